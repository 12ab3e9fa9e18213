"""Homework 1: text statistics. See README.md for the rules."""


def word_count(text):
    """How many words text has."""
    raise NotImplementedError


def unique_words(text):
    """The distinct words of text, lower-cased and sorted."""
    raise NotImplementedError


def top_words(text, n):
    """The n most frequent words as (word, count), most frequent first, ties alphabetical."""
    raise NotImplementedError


def average_word_length(text):
    """The mean word length rounded to 2 decimals (0.0 without words)."""
    raise NotImplementedError
