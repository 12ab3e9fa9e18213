"""Every record of grader.records survives SQLite's JSON (grader.codec) unchanged."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from grader.codec import from_json, to_json
from grader.config import Assignment, LatePolicy, LateTier, TestRule
from grader.records import (
    Grade,
    IntegrityFlag,
    LatePenalty,
    Outcome,
    StudentOutcome,
    TestOutcome,
    TestScore,
    never_graded,
)
from grader.roster import Student

FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(max_size=20)
VISIBILITY = st.sampled_from(["visible", "hidden", "after_due_date"])
DURATIONS = st.timedeltas(min_value=timedelta(days=-30), max_value=timedelta(days=30))
MOMENTS = st.datetimes(timezones=st.just(UTC))

TEST_OUTCOMES = st.builds(
    TestOutcome,
    name=TEXT,
    classname=TEXT,
    status=st.sampled_from(["ok", "failure", "error", "skipped"]),
    time=FLOATS,
    message=TEXT,
    output=TEXT,
    points=st.none() | FLOATS,
    max_points=st.none() | FLOATS,
    visibility=st.none() | VISIBILITY,
)
TEST_SCORES = st.builds(
    TestScore,
    name=TEXT,
    status=st.sampled_from(["ok", "failure", "error", "skipped", "did not run"]),
    points_possible=FLOATS,
    points_earned=FLOATS,
    visibility=VISIBILITY,
    classname=TEXT,
    message=TEXT,
    details=TEXT,
    time=FLOATS,
)
GRADES = st.builds(
    Grade,
    score=FLOATS,
    max_score=FLOATS,
    raw_points=FLOATS,
    penalty_points=FLOATS,
    late=st.builds(LatePenalty, DURATIONS, st.integers(0, 100), FLOATS, TEXT),
    basis=st.sampled_from(
        ["test points", "report points", "engine score", "tests passed", "no result"]
    ),
    tests=st.lists(TEST_SCORES, max_size=3).map(tuple),
    warnings=st.lists(TEXT, max_size=2).map(tuple),
)
STUDENTS = st.builds(
    Student,
    student_id=TEXT,
    name=TEXT,
    email=TEXT,
    line=st.integers(0, 10_000),
    problem=st.none() | TEXT,
    columns=st.dictionaries(TEXT, TEXT, max_size=3),
)
ASSIGNMENTS = st.builds(
    Assignment,
    id=TEXT,
    title=TEXT,
    project=TEXT,
    deadline=MOMENTS,
    repo=TEXT,
    max_points=FLOATS,
    scenario=st.none() | TEXT,
    tests=st.lists(st.builds(TestRule, TEXT, FLOATS, VISIBILITY), max_size=3).map(tuple),
    late=st.builds(
        LatePolicy,
        grace_minutes=FLOATS,
        percent_per_day=FLOATS,
        tiers=st.lists(st.builds(LateTier, FLOATS, FLOATS), max_size=2).map(tuple),
        max_days=FLOATS,
    ),
    extensions=st.dictionaries(TEXT, DURATIONS, max_size=2),
    clock=st.sampled_from(["commit_date", "first_seen"]),
    branch=st.none() | TEXT,
    lms=st.dictionaries(TEXT, TEXT, max_size=2),
    hidden_files=st.lists(TEXT, max_size=2).map(tuple),
)
OUTCOMES = st.builds(
    StudentOutcome,
    student=STUDENTS,
    assignment=ASSIGNMENTS,
    status=st.sampled_from(["graded", "not graded"]),
    outcome=st.sampled_from(list(Outcome)) | st.integers(-1, 99).map(Outcome.engine_status),
    reason=TEXT,
    commit=st.none() | st.text("0123456789abcdef", min_size=40, max_size=40),
    commit_reason=st.none() | TEXT,
    committed_at=st.none() | MOMENTS,
    lateness=DURATIONS,
    grade=st.none() | GRADES,
    submission_id=st.none() | st.integers(0, 2**53),
    engine_status=st.none() | TEXT,
    build_output=TEXT,
    debug_log=TEXT,
    archive_sha256=st.none() | TEXT,
    attempts=st.integers(0, 10),
    flags=st.lists(st.builds(IntegrityFlag, TEXT, TEXT), max_size=2).map(tuple),
)


@given(OUTCOMES)
def test_student_outcome_round_trips_through_the_codec(outcome: StudentOutcome) -> None:
    text = to_json(outcome)
    back = from_json(StudentOutcome, text)
    assert back == outcome
    assert to_json(back) == text  # and writes the same bytes again


@given(OUTCOMES)
def test_a_row_stored_before_flags_and_hidden_files_existed_still_reads(
    outcome: StudentOutcome,
) -> None:
    stored = json.loads(to_json(outcome))
    del stored["flags"]
    del stored["assignment"]["hidden_files"]
    back = from_json(StudentOutcome, json.dumps(stored))
    assert back.flags == ()
    assert back.assignment.hidden_files == ()
    assert replace(back, flags=outcome.flags) == replace(
        outcome, assignment=replace(outcome.assignment, hidden_files=())
    )


@given(TEST_OUTCOMES)
def test_test_outcome_round_trips_through_the_codec(outcome: TestOutcome) -> None:
    assert from_json(TestOutcome, to_json(outcome)) == outcome


def test_student_outcome_has_exactly_the_fields_the_pipeline_fills() -> None:
    assert [f.name for f in fields(StudentOutcome)] == [
        "student",
        "assignment",
        "status",
        "outcome",
        "reason",
        "commit",
        "commit_reason",
        "committed_at",
        "lateness",
        "grade",
        "submission_id",
        "engine_status",
        "build_output",
        "debug_log",
        "archive_sha256",
        "attempts",
        "flags",
        "override",  # set only when outputs apply the instructor's override
        "late_days",  # set only when outputs spend the course's late-day budget
    ]


def test_grade_late_days_are_the_charged_days() -> None:
    late = LatePenalty(timedelta(days=1, hours=6), 2, 20.0, "1 d 6 h late")
    grade = Grade(80.0, 100.0, 100.0, 20.0, late, "test points")
    assert grade.late_days == 2


def test_outcomes_are_stored_as_the_words_the_outputs_show() -> None:
    due = datetime(2026, 10, 1, tzinfo=UTC)
    blank = never_graded(Student("ada"), Assignment("hw1", "Homework 1", "hw1", due, "r", 100.0))
    for what in [*Outcome, Outcome.engine_status(21)]:
        text = to_json(blank.not_graded(what, "why"))
        assert f'"outcome":"{what.value}"' in text
        assert from_json(StudentOutcome, text).outcome is not None
    unknown = from_json(StudentOutcome, to_json(blank.not_graded(Outcome.engine_status(21), "")))
    assert unknown.outcome == "engine status 21"
    assert unknown.outcome.name == "ENGINE_STATUS"
