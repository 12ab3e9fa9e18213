"""`grader grade --preview`, then `grader publish --feedback-only` delivering it.

The preview grades each student's latest commit on the built-in engine, writes
``out/<a>/preview/<id>.md`` (PREVIEW at the top, visible tests only, hidden ones as a
count, no score) and stores no grade: no gradebook, no feedback pages, no grades rows.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from grader.config import load_course
from grader.grading import GradeOptions, grade
from grader.outputs import assignment_hidden_material
from grader.publishing import PublishOptions, publish
from grader.reports.preview import preview_text
from grader.reports.student_view import student_view
from grader.roster import load_roster
from tests.support.course_kit import make_course
from tests.support.publish_kit import HIDDEN_MESSAGE, HIDDEN_NAME, outcome_for
from tests.support.publish_kit import make_course as make_publish_course
from tests.support.repos import git

STUDENTS = ("s02", "s05", "s07")  # early and failing a test; a day late; no repository


def test_preview_lists_visible_tests_and_counts_hidden_ones(tmp_path: Path) -> None:
    course = load_course(make_publish_course(tmp_path, "https://canvas.invalid"))
    assignment = course.assignment("hw1")
    student = load_roster(course.roster)[0]
    outcome = outcome_for(student, assignment, 4)
    material = assignment_hidden_material(course, assignment, [outcome])

    text = preview_text(student_view(outcome, material), now=datetime(2026, 9, 1, tzinfo=UTC))

    assert text.startswith("# PREVIEW: Homework 1")
    assert "This is a preview, not your grade." in text
    assert "including 1 hidden test that previews never show" in text
    assert "| test\\_public\\_mul | failed |" in text
    assert "Score" not in text
    assert "hidden test 1" not in text
    for secret in (HIDDEN_NAME, HIDDEN_MESSAGE, "secret_overflow"):
        assert secret not in text


def test_preview_grades_latest_commits_and_stores_no_grade(tmp_path: Path) -> None:
    course = make_course(tmp_path)

    report = grade(GradeOptions(course, students=STUDENTS, preview=True))

    folder = course / "out" / "calc" / "preview"
    assert report.outputs[0].directory == folder
    assert sorted(p.name for p in folder.iterdir()) == ["s02.md", "s05.md", "s07.md"]
    late = (folder / "s05.md").read_text()
    head = git(course / "repos" / "s05", "rev-parse", "HEAD")
    assert head in late  # the latest commit, a day past the deadline
    assert "Every test passed." in late
    assert "penalty" not in late.lower()
    early = (folder / "s02.md").read_text()
    assert early.startswith("# PREVIEW: calc")
    assert "including 1 hidden test" in early
    assert "test_hidden_add_negative" not in early
    assert "hidden test 1" not in early
    assert "repository unavailable" in (folder / "s07.md").read_text()
    assert not (course / "out" / "calc" / "gradebook.csv").exists()
    assert not (course / "out" / "calc" / "feedback").exists()
    with sqlite3.connect(course / ".grader" / "state.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM grades").fetchone()[0] == 0

    # the nightly loop: deliver the previews; an unchanged preview is not sent again
    mains = {s: git(course / "repos" / s, "rev-parse", "main") for s in ("s02", "s05")}
    sent = publish(PublishOptions(course, "calc", "git", students=STUDENTS, feedback_only=True))
    lines = {line.student_id: line for line in sent.lines}
    assert (lines["s02"].result, lines["s05"].result) == ("sent", "sent")
    assert lines["s07"].result == "failed"  # no repository to push to
    repo = course / "repos" / "s02"
    assert git(repo, "show", "feedback:FEEDBACK.md") == early.strip()
    assert git(repo, "rev-parse", "main") == mains["s02"]
    assert git(repo, "status", "--porcelain") == ""
    again = publish(PublishOptions(course, "calc", "git", students=STUDENTS, feedback_only=True))
    assert {line.result for line in again.lines if line.student_id != "s07"} == {"unchanged"}
