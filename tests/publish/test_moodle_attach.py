"""`[lms.moodle] attach_feedback = true`: the feedback page as each grade's feedback file.

Through Moodle's documented file flow on the fake (tests/support/fake_moodle.py): the page
is uploaded to a new draft area (webservice/upload.php, the token as a form field), and
the save names that draft as ``plugindata[files_filemanager]``, replacing the grade's
feedback files: a page is never there twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.config import load_course
from grader.publish.probe import lms_checks
from grader.publish.results import PublishReport
from tests.support.fake_moodle import ASSIGNMENT, TOKEN, FakeMoodle
from tests.support.publish_kit import (
    HIDDEN_MESSAGE,
    HIDDEN_NAME,
    MOODLE_ID,
    SCORES,
    Waits,
    line,
    make_course,
    results,
    run_publish,
    store_grades,
)

SENT = ("ada", "bob", "cyd", "fay")
PAGE = "feedback-hw1.html"


def moodle_course(tmp_path: Path, url: str, *, attach: bool = True) -> Path:
    table = f'[lms.moodle]\nurl = "{url}"\nattach_feedback = {str(attach).lower()}\n\n'
    course = make_course(tmp_path, "https://canvas.invalid", extra=table)
    toml = course / "course.toml"
    toml.write_text(toml.read_text() + f'moodle_assignment_id = "{ASSIGNMENT}"\n')
    store_grades(course, SCORES)
    return course


@pytest.fixture
def course(tmp_path: Path, moodle: FakeMoodle) -> Path:
    return moodle_course(tmp_path, moodle.url)


def run(course: Path, **options: Any) -> PublishReport:
    return run_publish(course, "moodle", {"MOODLE_TOKEN": TOKEN}, **options)


def files(moodle: FakeMoodle, student: str) -> list[tuple[str, bytes]]:
    return moodle.grades[MOODLE_ID[student]].files


def test_each_grade_carries_the_students_feedback_page(course: Path, moodle: FakeMoodle) -> None:
    report = run(course)

    assert {results(report)[s] for s in SENT} == {"sent"}
    for student in SENT:
        ((name, page),) = files(moodle, student)  # one feedback file
        assert name == PAGE
        assert page.startswith(b"<!DOCTYPE html>")
        assert f"Student {student}".encode() in page
    bob = files(moodle, "bob")[0][1].decode()
    assert "7 / 10" in bob
    for secret in (HIDDEN_NAME, HIDDEN_MESSAGE, "for the instructor"):
        assert secret not in bob
    assert moodle.count("upload.php") == 4
    assert moodle.count("mod_assign_save_grades") == 1  # the drafts ride the bulk save
    assert all(names[-1] == "file_1" and "token" in names for names in moodle.upload_fields)
    assert moodle.tokens == {TOKEN}


def test_a_repeated_publish_uploads_nothing_and_a_changed_grade_replaces_the_page(
    course: Path, moodle: FakeMoodle
) -> None:
    run(course)
    again = run(course)
    assert {results(again)[s] for s in SENT} == {"unchanged"}
    assert moodle.count("upload.php") == 4
    store_grades(course, {"bob": 9})

    changed = run(course)

    assert results(changed)["bob"] == "sent"
    ((_, page),) = files(moodle, "bob")  # replaced, not added
    assert b"9 / 10" in page
    assert moodle.grades[MOODLE_ID["bob"]].file_saves == 2
    assert moodle.grades[MOODLE_ID["ada"]].file_saves == 1
    assert moodle.count("upload.php") == 5


def test_a_failed_upload_holds_back_that_student_only_and_the_next_publish_sends_it(
    course: Path, moodle: FakeMoodle
) -> None:
    moodle.refuse_uploads(b"Student cyd")

    report = run(course)

    assert results(report)["cyd"] == "failed"
    assert "the feedback page was not attached" in line(report, "cyd").detail
    assert "upload_error_ini_size" in line(report, "cyd").detail
    assert MOODLE_ID["cyd"] not in moodle.grades  # nothing half-sent
    assert {results(report)[s] for s in ("ada", "bob", "fay")} == {"sent"}
    assert report.exit_code == 1

    moodle.heal_uploads()
    again = run(course)

    assert results(again)["cyd"] == "sent"
    assert {results(again)[s] for s in ("ada", "bob", "fay")} == {"unchanged"}
    assert [name for name, _ in files(moodle, "cyd")] == [PAGE]


def test_without_attach_feedback_nothing_is_uploaded(tmp_path: Path, moodle: FakeMoodle) -> None:
    run(moodle_course(tmp_path, moodle.url, attach=False))
    assert moodle.count("upload.php") == 0
    assert all(files(moodle, s) == [] for s in SENT)
    assert moodle.drafts == {}


def test_a_service_without_file_uploads_is_named_by_doctor_and_publish(
    course: Path, moodle: FakeMoodle
) -> None:
    moodle.uploads = False

    checks = {c.name: c for c in lms_checks(load_course(course), {"MOODLE_TOKEN": TOKEN})}
    result = CliRunner().invoke(
        main, ["publish", str(course), "-a", "hw1", "--to", "moodle"], env={"MOODLE_TOKEN": TOKEN}
    )

    assert checks["moodle"].level == "error"
    assert "file uploads" in checks["moodle"].message
    assert result.exit_code == 3
    assert "file upload must be enabled" in result.stderr
    assert TOKEN not in result.output
    assert moodle.grades == {}  # nothing went out without its page


def test_a_dry_run_uploads_nothing(course: Path, moodle: FakeMoodle) -> None:
    report = run(course, dry_run=True, waits=Waits())
    assert {results(report)[s] for s in SENT} == {"would send"}
    assert moodle.count("upload.php") == 0
    assert moodle.drafts == {}
