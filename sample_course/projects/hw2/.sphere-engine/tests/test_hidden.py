"""Hidden tests for Homework 2: negative numbers, C division and the error messages.

Students see their points after grading, not the test code.
"""

from __future__ import annotations


def test_hidden_negative_numbers(rpn):
    assert rpn("-3 4 *\n") == "-12\n"


def test_hidden_division_truncates_toward_zero(rpn):
    assert rpn("7 2 /\n-7 2 /\n") == "3\n-3\n"


def test_hidden_division_by_zero(rpn):
    assert rpn("1 0 /\n") == "error: division by zero\n"


def test_hidden_stack_underflow(rpn):
    assert rpn("1 +\n") == "error: stack underflow\n"


def test_hidden_too_many_operands(rpn):
    assert rpn("1 2\n") == "error: too many operands\n"


def test_hidden_several_lines_and_blank_lines(rpn):
    assert rpn("1 1 +\n\n2 3 *\n") == "2\n6\n"
