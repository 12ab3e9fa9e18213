"""The records that flow from a tests report to the outputs, at the bottom of the graph.

``TestOutcome`` is one test as a report states it; ``TestScore`` is that test after the
assignment's points and visibility were applied; ``Grade`` is the whole scoring of one
submission; ``StudentOutcome`` is everything a run learned about one student and one
assignment, and ``Outcome`` names what became of them. All are frozen dataclasses that
``grader.codec`` stores in SQLite as JSON and reads back unchanged, so every field is a
plain JSON-friendly type. Scoring, the pipeline, progress and every report read them;
this module imports only the course's own records (config, roster).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from grader.config import Assignment, Visibility
from grader.roster import Student

TestStatus = Literal["ok", "failure", "error", "skipped"]
ScoredStatus = Literal["ok", "failure", "error", "skipped", "did not run"]
GradeBasis = Literal[
    "test points", "report points", "engine score", "tests passed", "no result", "override"
]
OverrideKind = Literal["score", "adjust"]
OutcomeStatus = Literal["graded", "not graded"]

TEST_STATUSES: tuple[TestStatus, ...] = ("ok", "failure", "error", "skipped")

_ENGINE_STATUS = re.compile(r"engine status -?\d+")


class Outcome(StrEnum):
    """What became of one student's work: the gradebook's ``outcome`` column.

    The first five are the engine's final statuses that are a grade; the rest say why a
    student is not graded. An engine status the API does not document is kept with its
    number (``Outcome.engine_status(21)`` is "engine status 21").
    """

    OK = "ok"
    FAIL = "fail"
    BUILD_ERROR = "build error"
    RUNTIME_ERROR = "runtime error"
    TIME_LIMIT = "time limit exceeded"
    PROJECT_ERROR = "project error"
    ENGINE_STATUS = "engine status"  # the family; members carry their code
    INVALID_ROSTER_ROW = "invalid roster row"
    NO_COMMIT = "no commit before cutoff"
    REPOSITORY_UNAVAILABLE = "repository unavailable"
    ARCHIVE_REJECTED = "archive rejected"
    INFRASTRUCTURE = "infrastructure"
    UNREADABLE_REPORT = "unreadable test report"
    NOT_GRADED_YET = "not graded yet"
    UNDECIDED = ""  # a record still being filled in by the pipeline; never stored

    @classmethod
    def engine_status(cls, code: int) -> Outcome:
        """The outcome of an undocumented final status ``code``."""
        return cls(f"engine status {code}")

    @classmethod
    def _missing_(cls, value: object) -> Outcome | None:
        if not isinstance(value, str) or not _ENGINE_STATUS.fullmatch(value):
            return None
        member = str.__new__(cls, value)
        member._name_ = "ENGINE_STATUS"
        member._value_ = value
        return member


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
    ``0 <= score <= raw_points <= max_score`` (an instructor's override sets ``score`` alone, see
    ``grader.scoring.overrides``). ``warnings`` are for the instructor only
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
class IntegrityFlag:
    """Evidence about one submission that disagrees with itself: for the instructor only.

    ``kind`` is one of ``grader.integrity.FLAG_KINDS`` (kept as text, so a row written by
    a later grader still reads); ``reason`` says what disagreed, in plain words.
    """

    kind: str
    reason: str


@dataclass(frozen=True)
class LateDayUse:
    """A student's late-day budget at one assignment: ``spent`` here, ``used`` in all up
    to and including it (assignments in deadline order), of ``budget``."""

    spent: int
    used: int
    budget: int

    @property
    def left(self) -> int:
        return max(self.budget - self.used, 0)


@dataclass(frozen=True)
class ScoreOverride:
    """An instructor's change to one student's score, with when and why.

    ``kind`` "score" sets the score to ``value``; "adjust" adds ``value`` (never below 0)
    to what the tests give, whatever they give after a regrade. ``graded_score`` is the
    tests' score when the override was set and ``current_score`` the one it applies to
    now (None: not graded): when they differ, the grade changed under the override and
    the instructor is told. ``show_reason``: the student's feedback may quote ``reason``.
    """

    kind: OverrideKind
    value: float
    reason: str
    created_at: datetime
    graded_score: float | None
    show_reason: bool = False
    current_score: float | None = None

    @property
    def grade_changed(self) -> bool:
        """The tests' score is no longer the one the override was set against."""
        return self.current_score != self.graded_score

    @property
    def applies(self) -> bool:
        """Whether it changes a score: an adjustment needs a grade to adjust."""
        return self.kind == "score" or self.current_score is not None

    def describe(self) -> str:
        """'score 90' or 'adjust +5'."""
        if self.kind == "score":
            return f"score {self.value:g}"
        return f"adjust {self.value:+g}"


@dataclass(frozen=True)
class StudentOutcome:
    """Everything one run learned about one student and one assignment.

    ``status`` is "graded" (a grade exists, possibly 0 for a build error) or "not graded"
    (``reason`` says why; never exported as a zero). ``flags`` are the integrity flags
    (``grader.integrity``): instructor-only, never shown to the student.
    """

    student: Student
    assignment: Assignment
    status: OutcomeStatus
    outcome: Outcome
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
    flags: tuple[IntegrityFlag, ...] = ()  # rows stored before flags existed read as none
    # the instructor's override, applied when outputs are written (never stored in grades)
    override: ScoreOverride | None = None
    # the course's late-day budget as this assignment left it, applied with the outputs
    late_days: LateDayUse | None = None

    @classmethod
    def blank(cls, student: Student, assignment: Assignment) -> StudentOutcome:
        """Nothing learned yet: not graded, no commit, no grade."""
        return cls(
            student=student,
            assignment=assignment,
            status="not graded",
            outcome=Outcome.UNDECIDED,
            reason="",
            commit=None,
            commit_reason=None,
            committed_at=None,
            lateness=timedelta(),
            grade=None,
            submission_id=None,
            engine_status=None,
            build_output="",
            debug_log="",
            archive_sha256=None,
            attempts=0,
        )

    def not_graded(self, what: Outcome, reason: str) -> StudentOutcome:
        """This outcome as "not graded" because of ``what``; ``reason`` says what exactly."""
        return replace(self, status="not graded", outcome=what, reason=reason, grade=None)


def never_graded(student: Student, assignment: Assignment) -> StudentOutcome:
    """The outcome of a roster student no run has graded yet."""
    reason = "not graded yet: run `grader grade` for this assignment"
    return StudentOutcome.blank(student, assignment).not_graded(Outcome.NOT_GRADED_YET, reason)
