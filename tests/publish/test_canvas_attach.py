"""`[lms.canvas] attach_feedback = true`: the feedback page goes with each new feedback comment.

Through Canvas's documented upload flow on the fake (tests/support/fake_canvas.py): the
file is announced, uploaded to the storage URL without the token, confirmed, and its id
attached to the comment; a repeated or resumed publish never attaches a page twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from grader.errors import LmsUnreachableError
from grader.publish.results import PublishReport
from tests.support.fake_canvas import TOKEN, FakeCanvas
from tests.support.publish_kit import (
    CANVAS_ID,
    HIDDEN_MESSAGE,
    HIDDEN_NAME,
    SCORES,
    line,
    make_course,
    results,
    run_publish,
    store_grades,
)

SENT = ("ada", "bob", "cyd", "fay")


@pytest.fixture
def course(tmp_path: Path, canvas: FakeCanvas) -> Path:
    course = make_course(tmp_path, canvas.url)
    toml = course / "course.toml"
    toml.write_text(
        toml.read_text().replace("course_id = 7\n", "course_id = 7\nattach_feedback = true\n")
    )
    store_grades(course, SCORES)
    return course


def run(course: Path, **options: Any) -> PublishReport:
    return run_publish(course, "canvas", {"CANVAS_TOKEN": TOKEN}, **options)


def pages(canvas: FakeCanvas, student: str) -> list[list[bytes]]:
    return canvas.attached(CANVAS_ID[student])


@pytest.mark.parametrize("answer", ["redirect", "created"])
def test_each_comment_carries_the_students_feedback_page(
    course: Path, canvas: FakeCanvas, answer: str
) -> None:
    canvas.upload_answer = answer  # a 301 to confirm, or a 201 with the file

    report = run(course)

    assert {results(report)[s] for s in SENT} == {"sent"}
    for student in SENT:
        ((page,),) = pages(canvas, student)  # one comment, one file
        assert page.startswith(b"<!DOCTYPE html>")
        assert f"Student {student}".encode() in page
    bob = pages(canvas, "bob")[0][0].decode()
    assert "7 / 10" in bob
    for secret in (HIDDEN_NAME, HIDDEN_MESSAGE, "for the instructor"):
        assert secret not in bob
    assert {f.state for f in canvas.files.values()} == {"available"}
    assert {f.name for f in canvas.files.values()} == {"feedback-hw1.html"}
    assert canvas.upload_authorizations == [""] * 4  # the storage never sees the token
    assert canvas.count("GET", "create_success$") == (4 if answer == "redirect" else 0)
    assert canvas.count("POST", "update_grades$") == 1  # the files ride the bulk request


def test_a_repeated_publish_attaches_nothing_again(course: Path, canvas: FakeCanvas) -> None:
    run(course)
    again = run(course)

    assert {results(again)[s] for s in SENT} == {"unchanged"}
    assert len(canvas.files) == 4
    assert canvas.count("POST", "/comments/files$") == 4


def test_a_changed_grade_attaches_the_new_page_once(course: Path, canvas: FakeCanvas) -> None:
    run(course)
    store_grades(course, {"bob": 9})

    report = run(course)

    assert results(report)["bob"] == "sent"
    first, second = pages(canvas, "bob")
    assert b"7 / 10" in first[0]
    assert b"9 / 10" in second[0]
    assert len(second) == 1
    assert len(pages(canvas, "ada")) == 1
    assert len(canvas.files) == 5


def test_a_failed_upload_holds_back_that_student_only_and_the_next_publish_sends_it(
    course: Path, canvas: FakeCanvas
) -> None:
    canvas.fail_uploads(CANVAS_ID["cyd"])

    report = run(course)

    assert results(report)["cyd"] == "failed"
    assert "the feedback page was not attached" in line(report, "cyd").detail
    assert "HTTP 400" in line(report, "cyd").detail
    assert canvas.comments(CANVAS_ID["cyd"]) == []
    assert canvas.grade(CANVAS_ID["cyd"]) is None  # nothing half-sent
    assert {results(report)[s] for s in ("ada", "bob", "fay")} == {"sent"}
    assert report.exit_code == 1

    canvas.heal_uploads()
    again = run(course)

    assert results(again)["cyd"] == "sent"
    assert {results(again)[s] for s in ("ada", "bob", "fay")} == {"unchanged"}
    assert [len(files) for files in pages(canvas, "cyd")] == [1]
    assert canvas.grade(CANVAS_ID["cyd"]) == "4"


def test_a_dropped_bulk_request_is_resumed_with_one_page_each(
    course: Path, canvas: FakeCanvas
) -> None:
    canvas.drop_posts(1)  # the pages are uploaded; the bulk request's answer never comes
    with pytest.raises(LmsUnreachableError):
        run(course)

    assert {results(run(course))[s] for s in SENT} == {"pending"}  # a job may be queued
    report = run(course, clock=lambda: datetime.now(UTC) + timedelta(minutes=31))

    assert report.settled == 4
    assert {results(report)[s] for s in SENT} == {"sent"}
    for student in SENT:
        assert [len(files) for files in pages(canvas, student)] == [1], student


def test_a_failed_bulk_job_sends_the_rest_one_at_a_time_with_their_page(
    course: Path, canvas: FakeCanvas
) -> None:
    canvas.fail_jobs(1, reach=2)

    report = run(course)

    assert {results(report)[s] for s in SENT} == {"sent"}
    assert canvas.count("PUT", "/submissions/") == 2
    for student in SENT:
        assert [len(files) for files in pages(canvas, student)] == [1], student
    assert len(canvas.files) == 4  # the pages uploaded once, attached by the PUT


def test_without_attach_feedback_nothing_is_uploaded(tmp_path: Path, canvas: FakeCanvas) -> None:
    course = make_course(tmp_path, canvas.url)
    store_grades(course, SCORES)
    run(course)
    assert canvas.files == {}
    assert all(pages(canvas, s) == [[]] for s in SENT)


def test_a_grade_after_feedback_only_adds_no_second_page(course: Path, canvas: FakeCanvas) -> None:
    run(course, feedback_only=True)
    run(course)
    note, grade_line = pages(canvas, "ada")
    assert len(note) == 1  # the feedback went out with its page
    assert grade_line == []  # "Your grade ... is 10": the page stands
