"""Public tests for Homework 1 (students see these and their results)."""

from __future__ import annotations


def test_public_word_count_simple(solution):
    assert solution.word_count("the quick brown fox") == 4


def test_public_unique_words_sorted(solution):
    assert solution.unique_words("b a c a") == ["a", "b", "c"]


def test_public_top_words_simple(solution):
    assert solution.top_words("a b a c a b", 2) == [("a", 3), ("b", 2)]


def test_public_average_word_length_simple(solution):
    assert solution.average_word_length("hi there") == 3.5
