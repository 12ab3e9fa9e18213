"""Outcomes as the pipeline builds them, on the sample course's real configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from grader.config import Assignment, load_course
from grader.records import Outcome, StudentOutcome, TestOutcome
from grader.roster import Student, load_roster
from grader.scoring import grade_submission

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
SHA = "0123456789abcdef0123456789abcdef01234567"

MakeOutcome = Callable[..., StudentOutcome]


@pytest.fixture(scope="session")
def sample_assignments() -> dict[str, Assignment]:
    return dict(load_course(SAMPLE).assignments)


@pytest.fixture
def make_outcome(sample_assignments: dict[str, Assignment]) -> MakeOutcome:
    """A graded (or not graded) outcome for hw1/hw2; ``failing`` names failing tests."""

    def build(
        student_id: str = "bchen",
        assignment: str = "hw1",
        *,
        failing: dict[str, str] | None = None,
        tests: list[TestOutcome] | None = None,
        lateness: timedelta = timedelta(),
        outcome: str = "fail",
        status: str = "graded",
        **changes: Any,
    ) -> StudentOutcome:
        a = sample_assignments[assignment]
        failing = failing or {}
        if tests is None:
            tests = [
                TestOutcome(
                    r.pattern,
                    "tests.test_solution",
                    "failure" if r.pattern in failing else "ok",
                    message=failing.get(r.pattern, ""),
                )
                for r in a.tests
            ]
        grade = grade_submission(tests, a, engine_score=None, lateness=lateness)
        done = StudentOutcome(
            student=Student(student_id, name=f"Student {student_id}", email=f"{student_id}@x.edu"),
            assignment=a,
            status="graded",
            outcome=Outcome(outcome),
            reason="some tests failed",
            commit=SHA,
            commit_reason="last commit, on time",
            committed_at=datetime(2026, 9, 18, 23, 5, tzinfo=UTC),
            lateness=lateness,
            grade=grade,
            submission_id=42,
            engine_status=outcome,
            build_output="",
            debug_log="",
            archive_sha256="f" * 64,
            attempts=1,
        )
        if status != "graded":
            done = replace(
                done,
                status="not graded",
                grade=None,
                commit=None,
                commit_reason=None,
                committed_at=None,
            )
        return replace(done, **changes)

    return build


@pytest.fixture(scope="session")
def sample_roster() -> dict[str, Student]:
    """The sample course's roster by student id, with its real LMS identities."""
    return {s.student_id: s for s in load_roster(SAMPLE / "roster.csv")}


@pytest.fixture
def roster_outcome(make_outcome: MakeOutcome, sample_roster: dict[str, Student]) -> MakeOutcome:
    """``make_outcome`` for a student of the sample roster (name, e-mail, LMS ids)."""

    def build(student_id: str, assignment: str = "hw1", **changes: Any) -> StudentOutcome:
        return make_outcome(student_id, assignment, student=sample_roster[student_id], **changes)

    return build
