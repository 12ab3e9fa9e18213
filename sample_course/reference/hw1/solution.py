"""Homework 1: text statistics. See README.md for the rules."""

import re
from collections import Counter

# A word is a run of letters, digits and apostrophes; everything else separates words.
WORD = re.compile(r"[a-z0-9']+")


def words(text):
    """The words of text, lower-cased, in order."""
    return WORD.findall(text.lower())


def word_count(text):
    """How many words text has."""
    return len(words(text))


def unique_words(text):
    """The distinct words of text, lower-cased and sorted."""
    return sorted(set(words(text)))


def top_words(text, n):
    """The n most frequent words as (word, count), most frequent first, ties alphabetical."""
    counts = Counter(words(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def average_word_length(text):
    """The mean word length rounded to 2 decimals (0.0 without words)."""
    found = words(text)
    if not found:
        return 0.0
    return round(sum(len(word) for word in found) / len(found), 2)
