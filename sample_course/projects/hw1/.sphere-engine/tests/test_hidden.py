"""Hidden tests for Homework 1: the edge cases the assignment text asks for.

Students see their points after grading, not the test code.
"""

from __future__ import annotations


def test_hidden_word_count_punctuation(solution):
    assert solution.word_count("Hello,world! Hello...again") == 4
    assert solution.word_count("don't stop") == 2


def test_hidden_unique_words_ignore_case(solution):
    assert solution.unique_words("The cat saw THE dog") == ["cat", "dog", "saw", "the"]


def test_hidden_top_words_ties_alphabetical(solution):
    text = "pear apple pear fig apple kiwi"
    assert solution.top_words(text, 3) == [("apple", 2), ("pear", 2), ("fig", 1)]


def test_hidden_top_words_n_exceeds_vocabulary(solution):
    assert solution.top_words("one two", 5) == [("one", 1), ("two", 1)]


def test_hidden_average_word_length_empty(solution):
    assert solution.average_word_length("") == 0.0
    assert solution.average_word_length(" ... ") == 0.0


def test_hidden_average_word_length_rounding(solution):
    assert solution.average_word_length("a bb bb") == 1.67
