"""`grader similarity`'s outputs: ``similarity.csv`` and ``similarity.html``.

Both list the pairs ranked (byte-identical workspaces first, then the most similar);
the page also lays the matching regions of the closest pairs side by side, the matched
lines highlighted, with the lines around them. For instructors only: it shows students'
code and names. One self-contained page (no script, nothing fetched); student text
goes through ``printable`` and autoescaping; the same comparison gives the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.config import Assignment
from grader.reports.dashboard import instructor_link
from grader.reports.excerpt import printable, safe_text
from grader.reports.templating import render
from grader.similarity import (
    COMMON_SHARE,
    MOSS_COMMON,
    Fragment,
    PairScore,
    Region,
    Steps,
    Workspace,
    common_limit,
    fragments,
)
from grader.winnowing import NOISE, WINDOW, CodeFile

SIMILARITY_HTML = "similarity.html"
SIMILARITY_CSV = "similarity.csv"
CSV_COLUMNS = (
    "student_a",
    "name_a",
    "student_b",
    "name_b",
    "similarity",
    "share_a",
    "share_b",
    "matched_chars",
    "matched_lines_a",
    "matched_lines_b",
    "identical",
    "commit_a",
    "commit_b",
)
LISTED_ROWS = 500  # rows of the page's table (the CSV has every pair)
DETAILED_PAIRS = 60  # pairs whose regions the page shows side by side
SHOWN_FRAGMENTS = 12  # regions per pair
CONTEXT_LINES = 2  # unmatched lines shown around a region


@dataclass(frozen=True)
class ComparedStudent:
    """What the outputs say about one student besides their code."""

    student_id: str
    name: str
    commit: str


@dataclass(frozen=True)
class CodeLine:
    number: int  # 1-based
    text: str
    matched: bool


@dataclass(frozen=True)
class SideBySide:
    """One matching region: the lines of each side, matched ones marked."""

    left_file: str
    left: tuple[CodeLine, ...]
    right_file: str
    right: tuple[CodeLine, ...]


@dataclass(frozen=True)
class PairLine:
    """One row of the ranked table (and, when detailed, its anchor)."""

    rank: int
    anchor: str  # "" when the page does not detail the pair
    left: str
    left_link: str
    right: str
    right_link: str
    similarity: str
    shares: str
    lines: str
    identical: bool
    above: bool


@dataclass(frozen=True)
class PairDetail:
    anchor: str
    title: str
    similarity: str
    regions: tuple[SideBySide, ...]
    more: int  # regions not shown


@dataclass(frozen=True)
class SimilarityPage:
    """Everything ``similarity.html`` shows."""

    assignment_id: str
    title: str
    compared: int
    threshold: str
    excluded: tuple[str, ...]
    method: str
    skipped: tuple[tuple[str, str], ...]
    identical_groups: tuple[tuple[str, ...], ...]
    rows: tuple[PairLine, ...]
    total_pairs: int
    above: int
    details: tuple[PairDetail, ...]


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def write_similarity_csv(
    scores: Sequence[PairScore], students: Mapping[str, ComparedStudent], path: Path
) -> Path:
    """Every listed pair, ranked, one row each (UTF-8, ``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in scores:
        a, b = students[s.left], students[s.right]
        writer.writerow(
            (
                safe_text(a.student_id),
                safe_text(a.name),
                safe_text(b.student_id),
                safe_text(b.name),
                f"{s.similarity:.3f}",
                f"{s.left_share:.3f}",
                f"{s.right_share:.3f}",
                s.matched_chars,
                s.left_lines,
                s.right_lines,
                "true" if s.identical else "false",
                a.commit,
                b.commit,
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    return path


def identical_groups(scores: Sequence[PairScore]) -> tuple[tuple[str, ...], ...]:
    """Students whose workspaces are byte-identical, as groups (each sorted)."""
    groups: list[set[str]] = []
    for s in scores:
        if not s.identical:
            continue
        home = next((g for g in groups if s.left in g or s.right in g), None)
        if home is None:
            groups.append({s.left, s.right})
        else:
            home.update((s.left, s.right))
    return tuple(sorted(tuple(sorted(g)) for g in groups))


def pair_lines(scores: Sequence[PairScore], detailed: int, threshold: float) -> list[PairLine]:
    rows = []
    for rank, s in enumerate(scores[:LISTED_ROWS], start=1):
        rows.append(
            PairLine(
                rank=rank,
                anchor=f"pair-{rank}" if rank <= detailed else "",
                left=printable(s.left),
                left_link=instructor_link(s.left),
                right=printable(s.right),
                right_link=instructor_link(s.right),
                similarity=percent(s.similarity),
                shares=f"{percent(s.left_share)} / {percent(s.right_share)}",
                lines=f"{s.left_lines} / {s.right_lines}",
                identical=s.identical,
                above=s.identical or s.similarity >= threshold,
            )
        )
    return rows


def pair_detail(
    rank: int,
    score: PairScore,
    found: Sequence[Fragment],
    left: Sequence[CodeFile],
    right: Sequence[CodeFile],
) -> PairDetail:
    """The regions of one pair side by side (the longest ``SHOWN_FRAGMENTS`` of them)."""
    left_files = {c.path: c for c in left}
    right_files = {c.path: c for c in right}
    regions = tuple(
        SideBySide(
            left_file=printable(f.left.file),
            left=_lines(left_files[f.left.file], f.left),
            right_file=printable(f.right.file),
            right=_lines(right_files[f.right.file], f.right),
        )
        for f in found[:SHOWN_FRAGMENTS]
    )
    kind = "identical workspaces" if score.identical else percent(score.similarity)
    return PairDetail(
        anchor=f"pair-{rank}",
        title=f"{printable(score.left)} and {printable(score.right)}",
        similarity=kind,
        regions=regions,
        more=max(0, len(found) - SHOWN_FRAGMENTS),
    )


def _lines(code: CodeFile, region: Region) -> tuple[CodeLine, ...]:
    first = max(0, region.first - CONTEXT_LINES)
    last = min(len(code.lines) - 1, region.last + CONTEXT_LINES)
    return tuple(
        CodeLine(n + 1, printable(code.lines[n]), region.first <= n <= region.last)
        for n in range(first, last + 1)
    )


def write_similarity_page(page: SimilarityPage, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render("similarity.html.j2", page=page).encode("utf-8"))
    return path


def similarity_page(
    assignment: Assignment,
    kept: Sequence[Workspace],
    scores: Sequence[PairScore],
    skipped: Sequence[tuple[str, str]],
    steps: Steps,
) -> SimilarityPage:
    """The page's view: the ranked pairs, and the regions of those at the threshold."""
    threshold = assignment.similarity_threshold
    shown = [s for s in scores if s.identical or s.similarity >= threshold][:DETAILED_PAIRS]
    by_id = {w.student_id: w for w in kept}
    steps.start("matching regions", len(shown))
    details = []
    for rank, score in enumerate(shown, start=1):
        left, right = by_id[score.left], by_id[score.right]
        details.append(pair_detail(rank, score, fragments(left, right), left.code, right.code))
        steps.advance()
    excluded = [f"the project's files (projects/{assignment.project}/)"]
    if assignment.starter:
        excluded.append(f"the starter code ({assignment.starter})")
    else:
        excluded.append(
            f"no starter code: set starter under [assignments.{assignment.id}] to leave it out"
        )
    limit = common_limit(len(kept))
    excluded.append(
        f"code found in more than {limit} workspaces (the larger of {MOSS_COMMON} and "
        f"1/{COMMON_SHARE} of the class)"
    )
    return SimilarityPage(
        assignment_id=assignment.id,
        title=assignment.title or assignment.id,
        compared=len(kept),
        threshold=percent(threshold),
        excluded=tuple(excluded),
        method=(
            "winnowed fingerprints of the code normalized by copydetect (names, strings, "
            f"whitespace and comments do not count), {NOISE}-character k-grams, windows of "
            f"{WINDOW}; similarity is both sides' matched code over both sides' code"
        ),
        skipped=tuple(skipped),
        identical_groups=identical_groups(scores),
        rows=tuple(pair_lines(scores, len(shown), threshold)),
        total_pairs=len(scores),
        above=sum(1 for s in scores if s.identical or s.similarity >= threshold),
        details=tuple(details),
    )
