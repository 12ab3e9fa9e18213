"""Hidden material of an assignment, and the scrubber that keeps it out of student texts.

Student code can carry the instructor's hidden tests into anything a student reads: an
exception whose message is the hidden file, a ``print`` of it in captured output, a
compiler error quoting a file the student ``#include``d. This module finds such material
in any text and replaces it, whatever route it took. Everything here is pure: the
project's files come in as text (``grader.project_tests.read_project_files``).

**Hidden material** of an assignment (``hidden_material``):

* hidden test names: the exact names of rules with ``visibility = "hidden"``, the names
  of report tests that were scored hidden, and every identifier in the project's files
  that the rules price as hidden (a glob rule with at least ``GLOB_LITERALS`` literal
  characters also catches names nobody listed: ``test_hidden_*`` finds
  ``test_hidden_anything`` in any text);
* hidden files: every project file that names a hidden test, plus those the course's
  ``[assignments.X] hidden_files`` globs choose (paths relative to ``projects/<id>/``);
* hidden lines: the non-trivial lines of the hidden files. In a Python file that also
  defines visible tests, those tests' own lines are not hidden. A line also present in
  a file that is not hidden (public tests, ``conftest.py``, ``config.json``) is not
  hidden either, so scrubbing never blanks what a student may see anyway.

**Non-trivial**: a line with at least ``MIN_CONTENT_CHARS`` word characters outside
language keywords, and no import or ``#include`` line: ``assert rpn("1 2\\n") == "3\\n"``
counts; ``return x``, a docstring's closing quotes and ``import pytest`` do not.

**Matching** compares word characters only (letters, digits, ``_``): whitespace,
quotes, brackets and operators are ignored, and backslash escapes (``\\n``, ``\\\\n``,
``\\'``, ``\\x41``) separate words, so a line survives re-indentation, ``repr()``
quoting and escaping, pytest's assertion rewriting (``E   `` prefixes, ``'...'`` reprs)
and a compiler quoting it (``   10 |     assert ...``). A hidden line matches from the
start of a word to the end of a word. Fragments match too: a run of at least
``FRAGMENT_CHARS`` word characters that begins a hidden line (and begins no line that
is not hidden) or ends one (likewise), which is what a truncated ``'abc...xyz'`` repr or
the tail of a stream leaves. Each match becomes ``[hidden]``; each hidden test name
becomes the label the student's feedback gives that test ("hidden test N"), or
"hidden test" when the student's report does not have it.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from grader.config import TestRule
from grader.project_tests import DefinedTest, defined_tests
from grader.records import TestOutcome
from grader.scoring.points import GLOB_CHARACTERS, is_glob, rule_for

REPLACEMENT = "[hidden]"
UNNUMBERED_LABEL = "hidden test"
MIN_CONTENT_CHARS = 6  # word characters outside keywords for a line to be non-trivial
MIN_KEY_CHARS = 8  # word characters of a whole non-trivial line
FRAGMENT_CHARS = 16  # word characters of a line's beginning or end matched on their own
GLOB_LITERALS = 3  # a hidden glob with fewer literal characters names no test by itself

KEYWORDS = frozenset(
    {
        *keyword.kwlist,
        *keyword.softkwlist,
        "self",
        "cls",
        "print",
        "pytest",
        "fixture",
        "mark",
        "raises",
        # C and friends: what compiler errors quote
        "auto",
        "char",
        "const",
        "double",
        "enum",
        "extern",
        "float",
        "int",
        "long",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "include",
        "define",
        "NULL",
        "printf",
        "main",
    }
)
_BOILERPLATE = re.compile(r"\s*(?:import\s|from\s+\S+\s+import\s|#\s*include\b|#!|#\s*-\*-)")
# What the matcher reads: a backslash run and the escape it makes (\n, \\n, \x41), then
# whitespace and quotes (both dropped), words, and any other single character.
_PIECES = re.compile(
    r"(?P<escape>\\+(?:[nrt]|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})?)"
    r"|(?P<gap>[\s'\"`\u2018\u2019\u201c\u201d]+)"
    r"|(?P<word>\w+)"
    r"|(?P<mark>.)",
    re.DOTALL,
)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# a test name as texts quote it: an identifier, maybe with pytest's parameter id, maybe
# right after an escape (``\ntest_x`` in a repr)
_NAME_TOKEN = re.compile(
    r"(?:(?P<escape>\\+[nrt])|(?<![\w\\]))(?P<name>[A-Za-z_]\w*(?:\[[^\]\s]{0,200}\])?)"
)
_PLAIN_NAME = re.compile(r"[A-Za-z_]\w*(?:\[[^\]\s]{0,200}\])?")
_PARAMETERS = re.compile(r"\[[^\]]*\]\Z")


@dataclass(frozen=True)
class HiddenMaterial:
    """What a student of one assignment must never read (see the module docstring).

    ``lines`` and ``public`` are lines as their word characters (``line_key``);
    ``rules`` are the assignment's test rules, to price names found in a text.
    """

    names: frozenset[str] = frozenset()
    rules: tuple[TestRule, ...] = ()
    lines: frozenset[str] = frozenset()
    public: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.names or self.lines or _hidden_globs(self.rules))


NO_HIDDEN_MATERIAL = HiddenMaterial()


def hidden_material(
    files: Mapping[str, str],
    rules: Iterable[TestRule],
    *,
    hidden_files: Iterable[str] = (),
    report_names: Iterable[str] = (),
) -> HiddenMaterial:
    """The hidden material in a project's ``files`` (relative path -> text).

    ``hidden_files`` are globs over those paths the course declares hidden;
    ``report_names`` are test names that reports scored hidden.
    """
    rules = tuple(rules)
    globs = tuple(hidden_files)
    known = {r.pattern for r in rules if r.visibility == "hidden" and not is_glob(r.pattern)}
    known.update(report_names)
    names = set(known)
    hidden_lines: list[str] = []
    public_lines: list[str] = []
    for path, text in sorted(files.items()):
        named = {t for t in set(_IDENTIFIER.findall(text)) if _names_hidden(t, known, rules)}
        names.update(named)
        lines = text.splitlines()
        if not named and not any(fnmatchcase(path, g) for g in globs):
            public_lines += lines
            continue
        visible = [t for t in defined_tests(path, text) if not _names_hidden(t.name, known, rules)]
        shown = _lines_of(visible)
        for number, line in enumerate(lines, start=1):
            (public_lines if number in shown and named else hidden_lines).append(line)
    public = frozenset(line_key(line) for line in public_lines)
    keys = frozenset(line_key(line) for line in hidden_lines if non_trivial(line))
    return HiddenMaterial(frozenset(names), rules, keys - public, public)


def line_key(line: str) -> str:
    """A line as the matcher compares it: no whitespace, quotes or backslash escapes."""
    return "".join(m["word"] or m["mark"] or "" for m in _PIECES.finditer(line))


def non_trivial(line: str) -> bool:
    """Whether a hidden line says enough to be worth removing (see the module docstring)."""
    if _BOILERPLATE.match(line):
        return False
    words = [m["word"] for m in _PIECES.finditer(line) if m["word"]]
    content = sum(len(w) for w in words if w not in KEYWORDS)
    return content >= MIN_CONTENT_CHARS and sum(map(len, words)) >= MIN_KEY_CHARS


def scrub(text: str, material: HiddenMaterial, labels: Mapping[str, str] | None = None) -> str:
    """``text`` with hidden lines as ``[hidden]`` and hidden test names as their labels.

    ``labels`` maps a hidden test's name to what the student's feedback calls it;
    other hidden names become "hidden test". Text without hidden material comes back
    unchanged (the same string).
    """
    if not text or material.empty:
        return text
    matcher = _compiled(material)
    spans = matcher.spans(text)
    if spans:
        pieces, at = [], 0
        for start, end in spans:
            pieces += [text[at:start], REPLACEMENT]
            at = end
        text = "".join([*pieces, text[at:]])
    return matcher.rename(text, labels or {})


def _names_hidden(name: str, known: set[str] | frozenset[str], rules: tuple[TestRule, ...]) -> bool:
    if name in known or _PARAMETERS.sub("", name) in known:
        return True
    if not any(fnmatchcase(name, g) for g in _hidden_globs(rules)):
        return False
    rule = rule_for(TestOutcome(name), rules)  # the rule scoring would use, precedence kept
    return rule is not None and rule.visibility == "hidden"


@lru_cache(maxsize=64)
def _hidden_globs(rules: tuple[TestRule, ...]) -> tuple[str, ...]:
    return tuple(
        r.pattern
        for r in rules
        if r.visibility == "hidden"
        and is_glob(r.pattern)
        and sum(ch not in GLOB_CHARACTERS for ch in r.pattern) >= GLOB_LITERALS
    )


def _lines_of(tests: Iterable[DefinedTest]) -> set[int]:
    return {n for t in tests for n in range(t.first, t.last + 1)}


class _Node:
    """A trie node over word characters: which keys pass through it and end in it."""

    __slots__ = ("children", "end", "hidden", "public")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.hidden = False  # a prefix of a hidden line
        self.public = False  # a prefix of a line that is not hidden
        self.end = False  # a whole hidden line ends here


def _trie(hidden: Iterable[str], public: Iterable[str]) -> _Node:
    root = _Node()
    for keys, mark in ((hidden, "hidden"), (public, "public")):
        for key in keys:
            node = root
            for ch in key:
                node = node.children.setdefault(ch, _Node())
                setattr(node, mark, True)
            if mark == "hidden":
                node.end = True
    return root


@dataclass(frozen=True)
class _Words:
    """A text as the matcher reads it (``line_key``), with where each character came from.

    ``edges`` are the indexes a match may start or end at: anywhere but inside a word.
    """

    chars: str
    origin: tuple[int, ...]  # offset in the text of each character
    edges: frozenset[int]

    @classmethod
    def of(cls, text: str) -> _Words:
        chars: list[str] = []
        origin: list[int] = []
        edges = set()
        for match in _PIECES.finditer(text):
            token = match["word"] or match["mark"]
            if token:
                edges.add(len(origin))
                chars.append(token)
                origin.extend(range(match.start(), match.end()))
        edges.add(len(origin))
        return cls("".join(chars), tuple(origin), frozenset(edges))


class _Matcher:
    """Hidden lines and names of one ``HiddenMaterial``, compiled for fast scanning."""

    def __init__(self, material: HiddenMaterial) -> None:
        self.material = material
        self.forward = _trie(material.lines, material.public)
        self.backward = _trie((k[::-1] for k in material.lines), (k[::-1] for k in material.public))
        odd = sorted((n for n in material.names if not _PLAIN_NAME.fullmatch(n)), key=len)
        self.odd_names = re.compile("|".join(re.escape(n) for n in reversed(odd))) if odd else None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where hidden lines and their fragments are, as merged ``(start, end)`` offsets."""
        if not self.material.lines:
            return []
        words = _Words.of(text)
        edges = sorted(words.edges)
        found = [s for i in edges if (s := self._from(words, i))]
        found += [s for j in edges if (s := self._until(words, j))]
        merged: list[tuple[int, int]] = []
        for start, end in sorted((words.origin[a], words.origin[b - 1] + 1) for a, b in found):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def _from(self, words: _Words, i: int) -> tuple[int, int] | None:
        """The longest hidden line, or hidden line's beginning, starting at edge ``i``."""
        node, depth, whole, chars = self.forward, 0, 0, words.chars
        while i + depth < len(chars):
            step = node.children.get(chars[i + depth])
            if step is None:
                break
            node, depth = step, depth + 1
            if node.end and i + depth in words.edges:
                whole = depth
        if depth >= FRAGMENT_CHARS and node.hidden and not node.public and depth > whole:
            return (i, i + depth)
        return (i, i + whole) if whole else None

    def _until(self, words: _Words, j: int) -> tuple[int, int] | None:
        """The longest end of a hidden line (``FRAGMENT_CHARS`` or more) ending at edge ``j``."""
        node, depth, best, chars = self.backward, 0, 0, words.chars
        while j - depth > 0:
            step = node.children.get(chars[j - depth - 1])
            if step is None:
                break
            node, depth = step, depth + 1
            if depth >= FRAGMENT_CHARS and node.hidden and not node.public:
                best = depth
        return (j - best, j) if best else None

    def rename(self, text: str, labels: Mapping[str, str]) -> str:
        """Every hidden test name in ``text`` replaced by its label."""
        material = self.material

        def label(name: str) -> str:
            return labels.get(name) or labels.get(_PARAMETERS.sub("", name)) or UNNUMBERED_LABEL

        if self.odd_names is not None:
            text = self.odd_names.sub(lambda m: label(m[0]), text)
        if not material.names and not _hidden_globs(material.rules):
            return text
        known = material.names
        cache: dict[str, bool] = {}

        def hidden(token: str) -> bool:
            found = cache.get(token)
            if found is None:
                found = cache[token] = _token_hidden(token, known, material.rules)
            return found

        def replace(match: re.Match[str]) -> str:
            escape, name = match["escape"] or "", match["name"]
            if hidden(name):
                return escape + label(name)
            if escape and hidden(escape[-1] + name):  # \\ntest_x: the n was the name's
                return escape[:-1] + label(escape[-1] + name)
            return match[0]

        return _NAME_TOKEN.sub(replace, text)


def _token_hidden(token: str, known: frozenset[str], rules: tuple[TestRule, ...]) -> bool:
    if _names_hidden(token, known, rules):
        return True
    base = _PARAMETERS.sub("", token)
    return base != token and _names_hidden(base, known, rules)


@lru_cache(maxsize=16)
def _compiled(material: HiddenMaterial) -> _Matcher:
    return _Matcher(material)
