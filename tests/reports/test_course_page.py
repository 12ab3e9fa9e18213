"""The course page: every assignment and every student across the term."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grader.records import LateDayUse, ScoreOverride, StudentOutcome
from grader.reports.course_page import course_view, write_course_page

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py


def test_each_student_has_a_score_per_assignment_a_total_and_late_days(
    make_outcome: MakeOutcome,
) -> None:
    late = make_outcome("gmueller", "hw1", outcome="ok", lateness=timedelta(days=1))
    hw1 = [
        make_outcome("amartin", "hw1", outcome="ok"),
        replace(late, late_days=LateDayUse(1, 1, 3)),
    ]
    hw2 = [
        make_outcome("amartin", "hw2", outcome="repository unavailable", status="not graded"),
        make_outcome("gmueller", "hw2", outcome="ok"),
    ]
    override = ScoreOverride("score", 95.0, "appeal", datetime(2026, 10, 5, tzinfo=UTC), 80.0)
    hw2[1] = replace(hw2[1], override=override)
    view = course_view("CS 101", {"hw1": hw1, "hw2": hw2})
    assert [a.assignment_id for a in view.assignments] == ["hw1", "hw2"]
    assert [(a.graded, a.not_graded) for a in view.assignments] == [(2, 0), (1, 1)]
    amartin, gmueller = view.rows
    assert [c.text for c in amartin.cells] == ["100", "- (repository unavailable)"]
    assert amartin.cells[0].link == "hw1/instructor/amartin.html"
    assert gmueller.cells[0].note == "late" and gmueller.cells[1].note == "override"
    assert gmueller.late_days_left == "2" and amartin.late_days_left == ""
    assert view.late_day_budget and view.max_total == "200"


def test_the_page_is_the_same_bytes_every_time(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    outcomes = {"hw1": [make_outcome("amartin", "hw1", outcome="ok")]}
    one = write_course_page("CS 101", outcomes, tmp_path / "one").read_bytes()
    two = write_course_page("CS 101", outcomes, tmp_path / "two").read_bytes()
    assert one == two and b"<script" not in one
