"""A workspace's code as winnowed fingerprints (MOSS's method, through copydetect).

Each code file is tokenized by its language (pygments, through copydetect's
``filter_code``) and normalized: every name becomes one letter (``V`` a variable, ``F``
a function, ``O`` a class), string literals ``S``, whitespace and comments disappear. So
renaming variables, reformatting or rewording comments changes nothing. Every k
characters of that normalized code (``k = NOISE``: shorter matches are noise) is hashed,
and copydetect's ``winnow`` keeps the smallest hash of each window of ``WINDOW`` of
them: any match at least ``NOISE + WINDOW - 1`` normalized characters long shares at
least one fingerprint, wherever it moved to (Schleimer, Wilkerson and Aiken, 2003).

The hashes are our own, a fixed polynomial over the characters: copydetect's use
Python's ``hash()``, which changes with every process, and the same workspaces must
give the same report bytes on every run. Boilerplate (the starter code, the project's
own files) is hashed in full, never winnowed, so every one of its k-grams is left out of
a student's fingerprints. Pure: texts in, fingerprints out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

NOISE = 25  # k: normalized characters per k-gram (copydetect's default noise threshold)
WINDOW = 16  # k-grams per winnowing window: matches of NOISE + WINDOW - 1 = 40 are certain
MAX_FILE_BYTES = 256 * 1024  # larger files are data, not code someone wrote
_BASE = 1_000_003
_MIX = 0x9E3779B97F4A7C15  # a 64-bit odd constant (the golden ratio's) to spread the bits
# lexers that read prose or data, not code: nothing a name could be normalized in
_NOT_CODE = frozenset({"text", "output"})

Hashes = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CodeFile:
    """One file as the comparison sees it: its lines and its normalized code.

    ``line_of[i]`` is the line (0-based) of ``lines`` that normalized character ``i``
    came from.
    """

    path: str
    lines: tuple[str, ...]
    normalized: str
    line_of: Ints


@dataclass(frozen=True)
class FileFingerprints:
    """The winnowed fingerprints of one file: hash and normalized position of each."""

    hashes: Hashes
    positions: Ints


def language_of(path: str) -> str | None:
    """The pygments language of a file name, or None for what is not code."""
    suffix = PurePosixPath(path).suffix.lower()
    name = PurePosixPath(path).name if not suffix else f"x{suffix}"
    return _language(name)


@functools.lru_cache(maxsize=512)
def _language(name: str) -> str | None:
    from pygments import lexers
    from pygments.util import ClassNotFound

    try:
        lexer = lexers.get_lexer_for_filename(name)
    except ClassNotFound:
        return None
    aliases = list(getattr(lexer, "aliases", ()))
    if not aliases or aliases[0] in _NOT_CODE:
        return None
    return str(aliases[0])


def code_text(data: bytes) -> str | None:
    """File bytes as text with one kind of line end, or None for binary or data files."""
    if len(data) > MAX_FILE_BYTES or b"\0" in data:
        return None
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalize(path: str, text: str) -> CodeFile | None:
    """``text`` tokenized and normalized by copydetect; None when it is not code."""
    language = language_of(path)
    if language is None:
        return None
    filter_code = _copydetect().filter_code
    # pygments drops leading newlines before tokenizing: positions are shifted back
    lead = len(text) - len(text.lstrip("\n"))
    normalized, offsets = filter_code(text, path, language)
    lines = tuple(text.split("\n"))
    return CodeFile(path, lines, str(normalized), _line_map(text, len(normalized), offsets, lead))


def _line_map(text: str, size: int, offsets: Any, lead: int) -> Ints:
    """Normalized position -> original line, from copydetect's removal offsets.

    ``offsets`` holds ``[position, characters removed before it]`` rows, one per
    removal; the count for a position is that of the first row at or after it.
    copydetect records a class name's row with the name's own length instead of the
    running count, so the counts are made non-decreasing first.
    """
    positions = np.arange(size, dtype=np.int64)
    if len(offsets):
        table = np.asarray(offsets, dtype=np.int64)
        removed = np.maximum.accumulate(table[:, 1])
        row = np.clip(np.searchsorted(table[:, 0], positions), 0, len(table) - 1)
        positions = positions + removed[row]
    starts = np.array([0, *(m.end() for m in re.finditer("\n", text))], dtype=np.int64)
    lines: Ints = np.searchsorted(starts, positions + lead, side="right") - 1
    return np.clip(lines, 0, len(starts) - 1)


def kgram_hashes(normalized: str, k: int = NOISE) -> Hashes:
    """The hash of every k characters of ``normalized``, in order (none if shorter)."""
    count = len(normalized) - k + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    chars = np.frombuffer(normalized.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(k):  # arrays wrap around 2**64 silently: the hash is mod 2**64
        hashes = hashes * np.uint64(_BASE) + chars[offset : offset + count]
    hashes ^= hashes >> np.uint64(31)
    hashes *= np.uint64(_MIX)
    hashes ^= hashes >> np.uint64(29)
    # 53 bits: copydetect's winnow compares hashes as floats, exact up to 2**53
    return hashes >> np.uint64(11)


def fingerprints(normalized: str, *, k: int = NOISE, window: int = WINDOW) -> FileFingerprints:
    """The winnowed fingerprints of one file's normalized code."""
    hashes = kgram_hashes(normalized, k)
    if not len(hashes):
        return FileFingerprints(hashes, np.zeros(0, dtype=np.int64))
    selected, index = _copydetect().winnow(hashes, window, remove_duplicates=False)
    return FileFingerprints(
        np.asarray(selected, dtype=np.uint64), np.asarray(index, dtype=np.int64)
    )


def boilerplate_hashes(files: Mapping[str, str], k: int = NOISE) -> frozenset[int]:
    """Every k-gram hash of the given files (path -> text): code that never matches."""
    found: set[int] = set()
    for path, text in files.items():
        code = normalize(path, text)
        if code is not None:
            found.update(kgram_hashes(code.normalized, k).tolist())
    return frozenset(found)


def code_files(files: Iterable[tuple[str, bytes]]) -> list[CodeFile]:
    """The code among a workspace's files (path, bytes), normalized, in path order."""
    found = []
    for path, data in sorted(files):
        text = code_text(data)
        code = normalize(path, text) if text is not None else None
        if code is not None and code.normalized:
            found.append(code)
    return found


@functools.cache
def _copydetect() -> Any:
    """copydetect's utilities, imported on first use.

    copydetect's package imports matplotlib (for its own report's charts), which costs
    most of a second: only `grader similarity` pays it, never `grader grade`.
    """
    from copydetect import utils

    return utils
