"""Every pair of workspaces compared by their fingerprints, without comparing every pair.

A pair is only looked at when it shares fingerprints: an inverted index (fingerprint ->
the workspaces holding it) lists the candidate pairs and how many fingerprints each
shares, so a class of 500 costs the fingerprints it actually shares, not 124,750
comparisons. A fingerprint found in more than ``common_limit`` workspaces is code
everyone writes (MOSS's ``-m``), and no evidence: it is left out like the starter code.

A candidate whose shared fingerprints could not reach ``floor`` is dropped; the others
are measured: the share of each workspace's fingerprinted code (normalized characters,
see ``grader.winnowing``) that the other one also has, and the lines it spans. The
pair's ``similarity`` is both sides' matched code over both sides' code (as Dolos
does), so one small file copied into a large project does not make the pair 100%.
``fragments`` pairs up the matching regions for the side-by-side report. Pure.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from grader.winnowing import NOISE, WINDOW, CodeFile, FileFingerprints, Hashes, Ints

LISTED_FLOOR = 0.1  # pairs less similar than this are not listed at all
MOSS_COMMON = 10  # MOSS's default: a passage in more than 10 programs is common code
COMMON_SHARE = 10  # ... or in more than a tenth of a large class
MAX_OCCURRENCES = 8  # a fingerprint repeated more often in one workspace pairs up this many


class Steps(Protocol):
    """Where long work reports how far it is (the CLI draws it)."""

    def start(self, what: str, total: int) -> None: ...
    def advance(self) -> None: ...


@dataclass(frozen=True)
class Workspace:
    """One student's graded workspace as the comparison sees it.

    ``hashes``/``files``/``positions`` are parallel: every fingerprint kept (boilerplate
    and common code removed), the file it is in and where in that file's normalized code.
    """

    student_id: str
    code: tuple[CodeFile, ...]
    hashes: Hashes
    files: Ints
    positions: Ints
    digest: str | None = None  # the graded archive's sha256: equal digests, equal bytes

    @functools.cached_property
    def unique(self) -> frozenset[int]:
        return frozenset(self.hashes.tolist())

    @functools.cached_property
    def covered(self) -> int:
        """Normalized characters its fingerprints stand for."""
        return _coverage(self.files, self.positions)


@dataclass(frozen=True)
class Region:
    """A stretch of one file: lines ``first`` to ``last`` (0-based, inclusive)."""

    file: str
    first: int
    last: int


@dataclass(frozen=True)
class Fragment:
    """One matching region: where it is in each workspace and how long it is."""

    left: Region
    right: Region
    size: int  # normalized characters on the left side


@dataclass(frozen=True)
class PairScore:
    """How much of two workspaces is the same code."""

    left: str
    right: str
    similarity: float  # both sides' matched code over both sides' code
    left_share: float  # of the left workspace's code, how much the right one has
    right_share: float
    matched_chars: int  # normalized characters matched, both sides together
    left_lines: int  # lines of the left workspace inside a match
    right_lines: int
    identical: bool  # byte-identical workspaces (the same graded archive)


def fingerprinted(
    student_id: str,
    code: Sequence[CodeFile],
    prints: Sequence[FileFingerprints],
    boilerplate: frozenset[int],
    *,
    digest: str | None = None,
) -> Workspace:
    """A workspace's fingerprints with every boilerplate one removed."""
    hashes, files, positions = [], [], []
    for index, found in enumerate(prints):
        keep = ~np.isin(found.hashes, np.fromiter(boilerplate, np.uint64, len(boilerplate)))
        hashes.append(found.hashes[keep])
        positions.append(found.positions[keep])
        files.append(np.full(int(keep.sum()), index, dtype=np.int64))
    return Workspace(
        student_id,
        tuple(code),
        _concat(hashes, np.uint64),
        _concat(files, np.int64),
        _concat(positions, np.int64),
        digest,
    )


def common_limit(workspaces: int) -> int:
    """In how many workspaces a fingerprint may appear before it is common code."""
    return max(MOSS_COMMON, workspaces // COMMON_SHARE)


def without_common(workspaces: Sequence[Workspace], limit: int) -> list[Workspace]:
    """The workspaces with every fingerprint found in more than ``limit`` of them removed."""
    seen = Counter(h for w in workspaces for h in w.unique)
    common = np.fromiter((h for h, n in seen.items() if n > limit), np.uint64)
    if not len(common):
        return list(workspaces)
    out = []
    for w in workspaces:
        keep = ~np.isin(w.hashes, common)
        out.append(
            Workspace(
                w.student_id, w.code, w.hashes[keep], w.files[keep], w.positions[keep], w.digest
            )
        )
    return out


def candidate_pairs(workspaces: Sequence[Workspace]) -> Counter[tuple[int, int]]:
    """(i, j) with i < j -> how many distinct fingerprints workspaces i and j share."""
    index: dict[int, list[int]] = {}
    for number, workspace in enumerate(workspaces):
        for value in workspace.unique:
            index.setdefault(value, []).append(number)
    shared: Counter[tuple[int, int]] = Counter()
    for holders in index.values():
        if len(holders) > 1:
            shared.update(itertools.combinations(holders, 2))
    return shared


def compare_all(
    kept: Sequence[Workspace],
    *,
    floor: float = LISTED_FLOOR,
    steps: Steps | None = None,
) -> list[PairScore]:
    """Every pair at least ``floor`` similar (and every byte-identical pair), best first.

    ``kept``: the workspaces with common code removed (``without_common``). ``steps``
    is told how many pairs will be measured, and each one done.
    """
    sizes = [len(w.unique) for w in kept]
    pairs = {
        pair
        for pair, shared in candidate_pairs(kept).items()
        # winnowed fingerprints sample the code evenly: a pair sharing too few of them
        # cannot cover ``floor`` of both sides' code
        if 2 * shared >= floor * (sizes[pair[0]] + sizes[pair[1]])
    }
    pairs |= identical_pairs(kept)
    if steps is not None:
        steps.start("comparing pairs", len(pairs))
    scores = []
    for i, j in sorted(pairs):
        scores.append(score_pair(kept[i], kept[j]))
        if steps is not None:
            steps.advance()
    listed = [s for s in scores if s.identical or s.similarity >= floor]
    return sorted(listed, key=rank)


def identical_pairs(workspaces: Sequence[Workspace]) -> set[tuple[int, int]]:
    groups: dict[str, list[int]] = {}
    for number, workspace in enumerate(workspaces):
        if workspace.digest:
            groups.setdefault(workspace.digest, []).append(number)
    return {pair for group in groups.values() for pair in itertools.combinations(group, 2)}


def rank(score: PairScore) -> tuple[bool, float, str, str]:
    """Byte-identical pairs first, then the most similar, then by student ids."""
    return (not score.identical, -score.similarity, score.left, score.right)


def score_pair(left: Workspace, right: Workspace) -> PairScore:
    """How much of ``left`` and ``right`` is the same code."""
    shared = np.fromiter(left.unique & right.unique, np.uint64)
    in_left, in_right = np.isin(left.hashes, shared), np.isin(right.hashes, shared)
    left_matched = _coverage(left.files[in_left], left.positions[in_left])
    right_matched = _coverage(right.files[in_right], right.positions[in_right])
    left_code, right_code = left.covered, right.covered
    total = left_code + right_code
    identical = left.digest is not None and left.digest == right.digest
    return PairScore(
        left=left.student_id,
        right=right.student_id,
        similarity=1.0 if identical else _ratio(left_matched + right_matched, total),
        left_share=1.0 if identical else _ratio(left_matched, left_code),
        right_share=1.0 if identical else _ratio(right_matched, right_code),
        matched_chars=left_matched + right_matched,
        left_lines=_line_count(left, in_left),
        right_lines=_line_count(right, in_right),
        identical=identical,
    )


def fragments(left: Workspace, right: Workspace, *, k: int = NOISE) -> list[Fragment]:
    """The matching regions of two workspaces, longest first.

    Each shared fingerprint pairs its places in both; pairs that follow each other in
    both workspaces (same files, each step forward by at most a window and a k-gram)
    grow one fragment, as Dolos joins its pairs.
    """
    right_at: dict[int, list[tuple[int, int]]] = {}
    for value, file, position in zip(
        right.hashes.tolist(), right.files.tolist(), right.positions.tolist(), strict=True
    ):
        right_at.setdefault(value, []).append((file, position))
    matches = []
    for value, file, position in zip(
        left.hashes.tolist(), left.files.tolist(), left.positions.tolist(), strict=True
    ):
        for other in right_at.get(value, ())[:MAX_OCCURRENCES]:
            matches.append((file, position, *other))
    gap = k + WINDOW
    open_runs: list[list[tuple[int, int, int, int]]] = []
    for match in sorted(matches):
        for run in open_runs:
            last = run[-1]
            if (
                last[0] == match[0]
                and last[2] == match[2]
                and 0 < match[1] - last[1] <= gap
                and 0 < match[3] - last[3] <= gap
            ):
                run.append(match)
                break
        else:
            open_runs.append([match])
    found = [_fragment(left, right, run, k) for run in open_runs]
    return sorted(found, key=lambda f: (-f.size, f.left.file, f.left.first, f.right.first))


def _fragment(
    left: Workspace, right: Workspace, run: list[tuple[int, int, int, int]], k: int
) -> Fragment:
    first, last = run[0], run[-1]
    return Fragment(
        left=_region(left.code[first[0]], first[1], last[1] + k - 1),
        right=_region(right.code[first[2]], first[3], last[3] + k - 1),
        size=last[1] + k - first[1],
    )


def _region(code: CodeFile, start: int, end: int) -> Region:
    end = min(end, len(code.line_of) - 1)
    return Region(code.path, int(code.line_of[start]), int(code.line_of[end]))


def _coverage(files: Ints, positions: Ints, k: int = NOISE) -> int:
    """Normalized characters under the k-grams at ``positions`` (overlaps counted once)."""
    if not len(positions):
        return 0
    where = np.unique(files * (1 << 32) + positions)  # files never share a character
    steps = np.diff(where)
    return int(np.minimum(steps, k).sum()) + k


def _line_count(workspace: Workspace, mask: npt.NDArray[np.bool_]) -> int:
    """Lines of ``workspace`` that a fingerprint in ``mask`` spans (each counted once)."""
    lines: set[tuple[int, int]] = set()
    for file, position in zip(
        workspace.files[mask].tolist(), workspace.positions[mask].tolist(), strict=True
    ):
        line_of = workspace.code[file].line_of
        end = min(position + NOISE - 1, len(line_of) - 1)
        lines.update((file, line) for line in range(line_of[position], line_of[end] + 1))
    return len(lines)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _concat(arrays: list[npt.NDArray[Any]], kind: type[Any]) -> npt.NDArray[Any]:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=kind)
