"""Gradescope-style results.json: one per graded student, from the student view; hidden tests
under their label, with their visibility."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.config import Assignment
from grader.errors import ExportError
from grader.records import StudentOutcome, TestOutcome
from grader.reports.hidden import NO_HIDDEN_MATERIAL
from grader.reports.lms import LmsExport
from grader.reports.lms.gradescope import gradescope_results as write_results
from grader.reports.student_view import student_views
from grader.roster import Student
from grader.scoring import grade_submission, parse_tests_report

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"  # 15 points, "hidden test 3"
PUBLIC = "test_public_word_count_simple"


def gradescope_results(outcomes: Sequence[StudentOutcome], assignment: Assignment) -> LmsExport:
    """The writer as `grader export` calls it: on the students' views."""
    return write_results(student_views(outcomes, NO_HIDDEN_MATERIAL), assignment)


def test_each_graded_student_gets_a_results_file_and_no_one_else(
    make_outcome: MakeOutcome,
) -> None:
    outcomes = [
        make_outcome("bchen", failing={HIDDEN_FAIL: "expected ['a', 'b']"}),
        make_outcome("hpatel", status="not graded", outcome="infrastructure"),
    ]
    exported = gradescope_results(outcomes, outcomes[0].assignment)
    assert list(exported.files) == ["results/bchen.json"]
    assert exported.stale == ("results/hpatel.json",)
    assert exported.rows == 1
    (warning,) = exported.warnings
    assert "hpatel" in warning and "bchen" not in warning


def test_results_carry_scores_status_and_visibility_of_every_test(
    make_outcome: MakeOutcome,
) -> None:
    outcome = make_outcome("bchen", failing={HIDDEN_FAIL: "expected ['a', 'b']"})
    data = gradescope_results([outcome], outcome.assignment).files["results/bchen.json"]
    document = json.loads(data)
    assert (document["score"], document["max_score"]) == (85.0, 100.0)
    assert len(document["tests"]) == 10
    hidden = next(t for t in document["tests"] if t["name"] == "hidden test 3")
    assert hidden == {
        "name": "hidden test 3",
        "score": 0.0,
        "max_score": 15.0,
        "status": "failed",
        "visibility": "hidden",
    }
    assert HIDDEN_FAIL not in data.decode() and "expected" not in data.decode()
    public = document["tests"][0]
    assert (public["status"], public["visibility"], public["score"]) == ("passed", "visible", 10)
    assert data.endswith(b"}\n")


def test_a_consumer_reading_the_file_sees_which_tests_to_hide(
    make_outcome: MakeOutcome,
) -> None:
    outcome = make_outcome("bchen", failing={HIDDEN_FAIL: "nope"})
    data = gradescope_results([outcome], outcome.assignment).files["results/bchen.json"]
    read = {t.name: t for t in parse_tests_report(data.decode("utf-8"))}
    assert read["hidden test 3"].visibility == "hidden"
    assert read["hidden test 3"].status == "failure"
    assert read["test_public_word_count_simple"].visibility == "visible"
    assert sum(t.points or 0 for t in read.values()) == 85


def test_the_score_is_after_the_late_penalty_and_the_output_says_why(
    make_outcome: MakeOutcome,
) -> None:
    outcome = make_outcome("gmueller", outcome="ok", lateness=timedelta(days=1, hours=6))
    data = gradescope_results([outcome], outcome.assignment).files["results/gmueller.json"]
    document = json.loads(data)
    assert document["score"] == 80.0
    assert sum(t["score"] for t in document["tests"]) == 100.0
    assert "Late penalty: 20 of 100 points" in document["output"]


def test_tests_that_did_not_run_fail_with_no_points(make_outcome: MakeOutcome) -> None:
    outcome = make_outcome("cokafor", "hw2", tests=[], outcome="build error")
    defined = ["test_public_a", "test_public_b", *(f"test_hidden_{n}" for n in range(6))]
    grade = grade_submission(
        [], outcome.assignment, engine_score=None, lateness=timedelta(), defined=defined
    )
    data = gradescope_results([replace(outcome, grade=grade)], outcome.assignment).files[
        "results/cokafor.json"
    ]
    tests = json.loads(data)["tests"]
    assert len(tests) == 8 and sum(t["max_score"] for t in tests) == 100
    assert {t["name"] for t in tests} >= {"test_public_a", "hidden test 6"}
    assert all(t["status"] == "failed" and t["score"] == 0 for t in tests)


def test_glob_rules_whose_tests_are_unknown_are_not_listed_as_tests(
    make_outcome: MakeOutcome,
) -> None:
    outcome = make_outcome("cokafor", "hw2", tests=[], outcome="build error")
    document = json.loads(
        gradescope_results([outcome], outcome.assignment).files["results/cokafor.json"]
    )
    assert document["tests"] == []
    assert document["score"] == 0 and document["max_score"] == 100
    assert "did not run are not listed" in document["output"]


def test_a_graded_student_whose_id_cannot_be_a_file_name_stops_the_export(
    make_outcome: MakeOutcome,
) -> None:
    outcomes = [
        make_outcome("a/b", student=Student("a/b", line=3)),
        make_outcome("..", student=Student("..", line=4)),
    ]
    with pytest.raises(ExportError) as caught:
        gradescope_results(outcomes, outcomes[0].assignment)
    message = str(caught.value)
    assert "a/b (roster line 3)" in message and ".. (roster line 4)" in message


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.text(max_size=60))
def test_any_test_message_gives_valid_json_with_the_same_bytes_each_time(
    make_outcome: MakeOutcome, message: str
) -> None:
    tests = [TestOutcome(PUBLIC, status="failure", message=message, output=message * 3)]
    outcome = make_outcome("bchen", tests=tests)
    first = gradescope_results([outcome], outcome.assignment).files["results/bchen.json"]
    again = gradescope_results([outcome], outcome.assignment).files["results/bchen.json"]
    assert first == again
    (public,) = [t for t in json.loads(first)["tests"] if t["name"] == PUBLIC]
    assert public["visibility"] == "visible"
