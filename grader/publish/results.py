"""What a publish did (or, dry, would do) for each student: the command's report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from grader.errors import EXIT_NOT_GRADED, EXIT_OK

LineResult = Literal[
    "sent",  # the target confirmed it
    "would send",  # --dry-run
    "unchanged",  # the target already has this grade and this feedback
    "not graded",  # nothing is sent: never a zero
    "unknown",  # the target does not know this student; the others still go out
    "failed",  # the target refused it; the next publish tries again
    "pending",  # the target has not confirmed yet; the next publish settles it
]
PROBLEMS: tuple[LineResult, ...] = ("unknown", "failed", "pending")


@dataclass(frozen=True)
class PublishLine:
    """One student's row: old value (in the target or last published), new value, result."""

    student_id: str
    name: str
    old: str
    new: str
    result: LineResult
    detail: str = ""


@dataclass(frozen=True)
class PublishReport:
    target: str  # "Canvas course 7, assignment 5" (never a token)
    lines: tuple[PublishLine, ...]
    dry_run: bool = False
    settled: int = 0  # rows an interrupted run left, settled before this one

    @property
    def exit_code(self) -> int:
        """1 when some student could not be published (each is listed), else 0."""
        return EXIT_NOT_GRADED if any(line.result in PROBLEMS for line in self.lines) else EXIT_OK
