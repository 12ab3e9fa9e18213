"""Public tests for Homework 2 (students see these and their results)."""

from __future__ import annotations


def test_public_addition(rpn):
    assert rpn("3 4 +\n") == "7\n"


def test_public_mixed_expression(rpn):
    assert rpn("5 1 2 + 4 * + 3 -\n") == "14\n"
