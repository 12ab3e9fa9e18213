"""The records that flow from a tests report to the outputs.

``TestOutcome`` is one test as a report states it; ``TestScore`` is that test after the
assignment's points and visibility were applied; ``Grade`` is the whole scoring of one
submission; ``StudentOutcome`` is everything a run learned about one student and one
assignment. All are frozen dataclasses that ``grader.codec`` stores in SQLite as JSON and
reads back unchanged, so every field is a plain JSON-friendly type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from grader.config import Assignment, Visibility
from grader.roster import Student

TestStatus = Literal["ok", "failure", "error", "skipped"]
ScoredStatus = Literal["ok", "failure", "error", "skipped", "did not run"]
GradeBasis = Literal["test points", "report points", "engine score", "tests passed", "no result"]
OutcomeStatus = Literal["graded", "not graded"]

TEST_STATUSES: tuple[TestStatus, ...] = ("ok", "failure", "error", "skipped")


@dataclass(frozen=True)
class TestOutcome:
    """One test as a tests report states it, whatever the report's format.

    ``points``, ``max_points`` and ``visibility`` are only set by formats that carry them
    (Gradescope ``results.json``); the course's own test rules take precedence.
    """

    __test__ = False  # not a pytest class, despite the name

    name: str
    classname: str = ""
    status: TestStatus = "ok"
    time: float = 0.0
    message: str = ""
    output: str = ""
    points: float | None = None
    max_points: float | None = None
    visibility: Visibility | None = None


@dataclass(frozen=True)
class TestScore:
    """One test after scoring: what it was worth, what it earned, who may see it.

    A weighted test that the report does not mention has status ``"did not run"``; when
    its rule is a glob, ``name`` is the glob (the names it would match are unknown).
    """

    __test__ = False  # not a pytest class, despite the name

    name: str
    status: ScoredStatus
    points_possible: float
    points_earned: float
    visibility: Visibility = "visible"
    classname: str = ""
    message: str = ""
    details: str = ""
    time: float = 0.0


@dataclass(frozen=True)
class LatePenalty:
    """What lateness cost: ``percent`` of the raw points, for ``days`` started days."""

    lateness: timedelta
    days: int
    percent: float
    reason: str


NO_PENALTY = LatePenalty(timedelta(), 0, 0.0, "on time")


@dataclass(frozen=True)
class Grade:
    """The scoring of one submission.

    ``score = raw_points - penalty_points``, both rounded to hundredths, and
    ``0 <= score <= raw_points <= max_score``. ``warnings`` are for the instructor only
    (the gradebook's notes; they may name hidden tests, so feedback never shows them).
    """

    score: float
    max_score: float
    raw_points: float
    penalty_points: float
    late: LatePenalty
    basis: GradeBasis
    tests: tuple[TestScore, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def late_days(self) -> int:
        """Started days charged for lateness (0 on time or within the grace period)."""
        return self.late.days


@dataclass(frozen=True)
class StudentOutcome:
    """Everything one run learned about one student and one assignment.

    ``status`` is "graded" (a grade exists, possibly 0 for a build error) or "not graded"
    (``reason`` says why; never exported as a zero).
    """

    student: Student
    assignment: Assignment
    status: OutcomeStatus
    outcome: str
    reason: str
    commit: str | None
    commit_reason: str | None
    committed_at: datetime | None
    lateness: timedelta
    grade: Grade | None
    submission_id: int | None
    engine_status: str | None
    build_output: str
    debug_log: str
    archive_sha256: str | None
    attempts: int
