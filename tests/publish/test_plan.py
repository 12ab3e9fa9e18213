"""plan_delivery with plain values: what a student gets given what the target last confirmed."""

from __future__ import annotations

import pytest

from grader.config import load_course
from grader.outputs import assignment_hidden_material
from grader.publish.ledger import LastSent
from grader.publish.plan import plan_delivery, text_sha256, with_ref
from grader.reports.student_view import StudentView, student_view
from grader.roster import load_roster
from tests.support.publish_kit import make_course, outcome_for

FEEDBACK = "# Homework 1\n\nScore: 7 / 10\n"
Views = dict[float | None, StudentView]


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> Views:
    course = load_course(make_course(tmp_path_factory.mktemp("plan"), "https://c.invalid"))
    student = load_roster(course.roster)[0]
    material = assignment_hidden_material(course, course.assignment("hw1"), [])
    return {
        score: student_view(outcome_for(student, course.assignment("hw1"), score), material)
        for score in (7, 9, None)
    }


def test_first_publish_sends_the_grade_and_the_feedback(views: Views) -> None:
    delivery = plan_delivery(views[7], FEEDBACK, LastSent())
    assert delivery is not None
    assert (delivery.value, delivery.comment, delivery.why) == ("7", FEEDBACK, "new grade")
    assert delivery.comment_sha256 == text_sha256(FEEDBACK)


def test_nothing_changed_sends_nothing(views: Views) -> None:
    assert plan_delivery(views[7], FEEDBACK, LastSent("7", text_sha256(FEEDBACK))) is None


def test_a_changed_grade_says_what_changed(views: Views) -> None:
    delivery = plan_delivery(views[9], FEEDBACK, LastSent("7", text_sha256("old")))
    assert delivery is not None
    assert delivery.value == "9"
    assert delivery.comment.startswith("Your grade for Homework 1 changed from 7 to 9 (out of 10).")
    assert delivery.comment.endswith(FEEDBACK)


def test_changed_feedback_with_the_same_grade_is_a_comment_only(views: Views) -> None:
    delivery = plan_delivery(views[7], FEEDBACK, LastSent("7", text_sha256("old")))
    assert delivery is not None
    assert delivery.value is None
    assert delivery.comment.startswith("Your feedback for Homework 1 was updated")


def test_a_student_not_graded_gets_nothing_never_a_zero(views: Views) -> None:
    assert plan_delivery(views[None], FEEDBACK, LastSent()) is None


def test_feedback_only_never_carries_a_value(views: Views) -> None:
    delivery = plan_delivery(views[7], FEEDBACK, LastSent(), feedback_only=True)
    assert delivery is not None
    assert delivery.value is None
    assert (
        plan_delivery(views[7], FEEDBACK, LastSent(None, text_sha256(FEEDBACK)), feedback_only=True)
        is None
    )


def test_the_reference_ends_the_comment() -> None:
    assert with_ref("text\n", "ab12").endswith("text\n\n(sent by grader; ref ab12)")
