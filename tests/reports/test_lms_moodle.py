"""Moodle grade import file: identity column, '-' for no grade, the 100 limit, feedback."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.errors import ConfigError, ExportError
from grader.records import StudentOutcome, TestOutcome
from grader.reports.lms.moodle import FILE, moodle_csv
from grader.roster import Student

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
Roster = dict[str, Student]  # the sample_roster fixture of conftest.py
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"  # 15 points


def cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_moodle_file_has_email_grade_and_feedback_and_a_dash_for_no_grade(
    roster_outcome: MakeOutcome,
) -> None:
    outcomes = [
        roster_outcome("bchen", failing={HIDDEN_FAIL: "SECRET"}),
        roster_outcome("hpatel", status="not graded", outcome="infrastructure"),
    ]
    exported = moodle_csv(outcomes, outcomes[0].assignment)
    assert exported.files[FILE] == (
        b"Email address,Homework 1: Text statistics,Homework 1: Text statistics (Feedback)\r\n"
        b"bchen@students.example.edu,85,85 / 100 points. Some tests failed."
        b" 9 of 10 tests passed.\r\n"
        b"hpatel@students.example.edu,-,Not graded: no score is recorded yet"
        b" (this is not a zero).\r\n"
    )
    assert exported.rows == 2
    assert exported.warnings == ()


@pytest.mark.parametrize("choice", ["idnumber", "ID number", "id_number"])
def test_moodle_id_number_identity_is_the_sis_user_id(
    choice: str, roster_outcome: MakeOutcome
) -> None:
    outcome = roster_outcome("amartin", outcome="ok")
    assignment = replace(outcome.assignment, lms={"moodle_identity": choice})
    rows = cells(moodle_csv([outcome], assignment, feedback=False).files[FILE])
    assert rows == [["ID number", "Homework 1: Text statistics"], ["20261001", "100"]]


def test_moodle_unknown_identity_is_a_config_error_naming_the_choices(
    roster_outcome: MakeOutcome,
) -> None:
    outcome = roster_outcome("amartin")
    assignment = replace(outcome.assignment, lms={"moodle_identity": "username"})
    with pytest.raises(ConfigError, match=r"moodle_identity: .*'username'.*email or idnumber"):
        moodle_csv([outcome], assignment)


def test_moodle_names_every_student_without_the_chosen_identity(
    make_outcome: MakeOutcome, roster_outcome: MakeOutcome, sample_roster: Roster
) -> None:
    outcomes = [
        make_outcome(sid, student=replace(sample_roster[sid], email=""))
        for sid in ("amartin", "bchen")
    ] + [roster_outcome("cokafor")]
    with pytest.raises(ExportError) as caught:
        moodle_csv(outcomes, outcomes[0].assignment)
    message = str(caught.value)
    assert "amartin (roster line 2): no email" in message
    assert "bchen (roster line 3): no email" in message
    assert "cokafor" not in message


def over_100(outcome: StudentOutcome, score: float) -> StudentOutcome:
    assert outcome.grade is not None
    grade = replace(outcome.grade, score=score, raw_points=score, max_score=150)
    assignment = replace(outcome.assignment, max_points=150)
    return replace(outcome, grade=grade, assignment=assignment)


def test_moodle_refuses_grades_above_100_naming_every_one(roster_outcome: MakeOutcome) -> None:
    outcomes = [
        over_100(roster_outcome("amartin"), 120),
        over_100(roster_outcome("bchen"), 90),
        over_100(roster_outcome("cokafor"), 100.5),
    ]
    with pytest.raises(ExportError) as caught:
        moodle_csv(outcomes, outcomes[0].assignment)
    message = str(caught.value)
    assert "amartin (120), cokafor (100.5)" in message
    assert "bchen" not in message
    assert "assignments.hw1.lms.moodle_allow_over_100 = true" in message


def test_moodle_allows_grades_above_100_when_the_course_says_so(
    roster_outcome: MakeOutcome,
) -> None:
    outcome = over_100(roster_outcome("amartin"), 120)
    assignment = replace(outcome.assignment, lms={"moodle_allow_over_100": "True"})
    exported = moodle_csv([replace(outcome, assignment=assignment)], assignment)
    assert cells(exported.files[FILE])[1][:2] == ["amartin@students.example.edu", "120"]
    assert exported.warnings == ()


def test_moodle_warns_when_max_points_exceed_100_even_if_no_grade_does(
    roster_outcome: MakeOutcome,
) -> None:
    outcome = over_100(roster_outcome("bchen"), 90)
    (warning,) = moodle_csv([outcome], outcome.assignment).warnings
    assert "max_points 150" in warning


def test_moodle_allow_over_100_must_be_true_or_false(roster_outcome: MakeOutcome) -> None:
    outcome = roster_outcome("amartin")
    assignment = replace(outcome.assignment, lms={"moodle_allow_over_100": "sometimes"})
    with pytest.raises(ConfigError, match="moodle_allow_over_100: expected true or false"):
        moodle_csv([outcome], assignment)


def test_moodle_feedback_gives_the_late_penalty_and_build_errors_plainly(
    roster_outcome: MakeOutcome,
) -> None:
    from datetime import timedelta

    late = roster_outcome("gmueller", outcome="ok", lateness=timedelta(days=1, hours=6))
    build = roster_outcome("cokafor", "hw2", tests=[], outcome="build error")
    rows = cells(moodle_csv([late], late.assignment).files[FILE])
    assert rows[1][2] == (
        "80 / 100 points. Every test passed. 10 of 10 tests passed. Late penalty: 20 points (20%)."
    )
    rows = cells(moodle_csv([build], build.assignment).files[FILE])
    assert rows[1][2] == "0 / 100 points. The code did not compile, so no test ran."


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.text(min_size=1, max_size=40))
def test_moodle_feedback_never_carries_test_names_or_messages(
    message: str, roster_outcome: MakeOutcome
) -> None:
    tests = [TestOutcome(HIDDEN_FAIL, status="failure", message="SECRET " + message)]
    outcome = roster_outcome("bchen", tests=tests, reason=message)
    feedback = cells(moodle_csv([outcome], outcome.assignment).files[FILE])[1][2]
    assert "SECRET" not in feedback
    assert "test_" not in feedback
    assert feedback.startswith("0 / 100 points. Some tests failed. 0 of 1 tests passed.")
