"""Integrity flags on the instructor's pages: shown there, inert, and dropped for students."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grader.records import IntegrityFlag, StudentOutcome
from grader.reports.dashboard import dashboard_view, write_dashboard
from grader.reports.gradebook import build_gradebook
from grader.reports.hidden import NO_HIDDEN_MATERIAL
from grader.reports.instructor import write_instructor_views
from grader.reports.student_view import student_view
from grader.roster import Student

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
HOSTILE = IntegrityFlag("unknown tests", '<script>alert(1)</script> names "=cmd|x" \x1b[31m')


def test_the_dashboard_links_flagged_students_to_their_page_when_they_have_one(
    make_outcome: MakeOutcome,
) -> None:
    outcomes = [
        make_outcome("amartin", flags=(HOSTILE,)),
        make_outcome("bchen"),
        make_outcome("a/b", student=Student("a/b"), flags=(HOSTILE,)),
    ]
    view = dashboard_view(outcomes, outcomes[0].assignment)
    assert [(f.student_id, f.link) for f in view.needs_look] == [
        ("amartin", "instructor/amartin.html"),
        ("a/b", ""),
    ]


def test_flag_text_is_inert_on_every_page(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    outcome = make_outcome("amartin", flags=(HOSTILE,))
    page = write_dashboard([outcome], outcome.assignment, tmp_path).read_text(encoding="utf-8")
    write_instructor_views([outcome], tmp_path)
    instructor = (tmp_path / "instructor" / "amartin.html").read_text(encoding="utf-8")
    for text in (page, instructor):
        assert "<script>" not in text and "&lt;script&gt;" in text
        assert "\x1b" not in text
    cell = build_gradebook([outcome])["flags"].iloc[0]
    assert cell.startswith("unknown tests: ") and "\x1b" not in cell


def test_an_unflagged_dashboard_says_so(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    outcome = make_outcome()
    page = write_dashboard([outcome], outcome.assignment, tmp_path).read_text(encoding="utf-8")
    assert "<h2>Needs a look (0)</h2>" in page
    assert build_gradebook([outcome])["flags"].iloc[0] == ""


def test_the_student_view_drops_the_flags(make_outcome: MakeOutcome) -> None:
    outcome = make_outcome(flags=(HOSTILE,))
    assert student_view(outcome, NO_HIDDEN_MATERIAL).flags == ()
