"""Late-day budgets: spent across the term, in deadline order, before any penalty."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from grader.config import Course, parse_course
from grader.errors import ConfigError
from grader.records import LateDayUse, StudentOutcome
from grader.reports.feedback import late_days_text
from grader.scoring.late_days import spend_late_days

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
HW1_LATE = timedelta(days=1, hours=6, minutes=1)  # 2 started days: 20% off without a budget
HW2_LATE = timedelta(days=2, hours=2, minutes=1)  # 3 started days: 30% off


def test_late_days_are_spent_in_deadline_order_before_any_penalty(
    make_outcome: MakeOutcome,
) -> None:
    hw1 = make_outcome("gmueller", "hw1", outcome="ok", lateness=HW1_LATE)
    hw2 = make_outcome("gmueller", "hw2", outcome="ok", lateness=HW2_LATE)
    assert hw1.grade is not None and hw1.grade.score == 80
    first, second = spend_late_days([hw1, hw2], 3)
    assert first.late_days == LateDayUse(spent=2, used=2, budget=3)
    assert first.grade is not None and first.grade.score == 100
    assert first.grade.late.reason == "1 d 6 h 1 min late, covered by 2 late days from your budget"
    # one day left for hw2: the other 1 d 2 h 1 min cost 2 started days x 10%
    assert second.late_days == LateDayUse(spent=1, used=3, budget=3)
    assert second.grade is not None and second.grade.late.percent == 20
    assert second.grade.late.reason.startswith("1 late day from your budget, then 1 d 2 h 1 min")


def test_on_time_grace_and_not_graded_spend_nothing(make_outcome: MakeOutcome) -> None:
    on_time = make_outcome("amartin", "hw1", outcome="ok")
    grace = make_outcome("fsato", "hw2", outcome="ok", lateness=timedelta(minutes=10))
    missing = make_outcome("hpatel", "hw2", status="not graded", outcome="repository unavailable")
    spent = spend_late_days([on_time, grace, missing], 5)
    assert [o.late_days for o in spent] == [LateDayUse(0, 0, 5)] * 3
    assert [o.grade for o in spent] == [on_time.grade, grace.grade, None]


def test_an_empty_budget_changes_no_grade(make_outcome: MakeOutcome) -> None:
    late = make_outcome("gmueller", "hw1", outcome="ok", lateness=HW1_LATE)
    (spent,) = spend_late_days([late], 0)
    assert spent.grade == late.grade and spent.late_days == LateDayUse(0, 0, 0)


def test_feedback_says_how_many_late_days_are_used_and_left() -> None:
    assert late_days_text(LateDayUse(2, 2, 5)) == (
        "This assignment used 2 late days: you used 2 of your 5 late days (3 left)."
    )
    assert late_days_text(LateDayUse(0, 1, 5)) == "You used 1 of your 5 late days (4 left)."
    assert late_days_text(None) == ""


COURSE = """
[course]
name = "C"
{extra}
[assignments.a]
deadline = 2026-10-01T23:59:00Z
repo = "r/{{student_id}}"
"""


def test_the_budget_is_read_from_course_late_days(tmp_path: Path) -> None:
    import tomllib

    def course(extra: str) -> Course:
        text = COURSE.format(extra=extra)
        return parse_course(tomllib.loads(text), tmp_path, tmp_path / "course.toml")

    assert course("").late_day_budget is None
    assert course("[course.late_days]\nbudget = 5\n").late_day_budget == 5
    for wrong in ("budget = 2.5", "budget = -1", "days = 3"):
        with pytest.raises(ConfigError, match=r"course\.late_days"):
            course(f"[course.late_days]\n{wrong}\n")
