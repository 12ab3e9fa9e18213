"""Preview feedback (`grader grade --preview`): ``preview/<student_id>.md``.

A preview grades a student's latest commit before the deadline. It is built from the
``StudentView`` (the one door) like the feedback, then narrowed further: only visible
tests are listed, hidden tests (and tests shown after the due date) only as a count, and
no score, since a total would reveal how the hidden tests went. Every page says
PREVIEW at the top. The gradebook and the stored grades are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from grader.reports.feedback import FeedbackView, feedback_view, file_stem
from grader.reports.student_view import StudentView
from grader.reports.templating import render

PREVIEW_DIR = "preview"


def preview_view(view: StudentView, *, now: datetime) -> tuple[FeedbackView, int]:
    """The feedback view with visible tests only, and how many tests it leaves unshown."""
    shown = feedback_view(view, now=now)
    tests = view.grade.tests if view.grade and view.status == "graded" else ()
    visible = tuple(
        line for line, test in zip(shown.tests, tests, strict=True) if test.visibility == "visible"
    )
    hidden = sum(1 for test in tests if test.visibility != "visible")
    narrowed = replace(
        shown,
        tests=visible,
        passed=sum(1 for line in visible if line.status == "passed"),
        score="",
        raw_points="",
        penalty_points="",
        late_text="",
    )
    return narrowed, hidden


def preview_text(view: StudentView, *, now: datetime) -> str:
    narrowed, hidden = preview_view(view, now=now)
    # no time of making: the same commit gives the same bytes, so a nightly publish of an
    # unchanged preview sends nothing
    return render("preview.md.j2", view=narrowed, hidden=hidden)


def write_previews(views: Iterable[StudentView], directory: Path, *, now: datetime) -> list[Path]:
    """Write ``directory/preview/<student_id>.md`` for every view."""
    folder = directory / PREVIEW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for view in views:
        path = folder / f"{file_stem(view.student.student_id)}.md"
        path.write_text(preview_text(view, now=now), encoding="utf-8")
        written.append(path)
    return written
