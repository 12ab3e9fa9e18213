"""Late-day budgets: each student's late days are spent across the term before any
percentage penalty applies. Pure.

``[course.late_days] budget = N`` gives every student N days. Going through one
student's assignments in deadline order, a graded submission that is late (past the
grace period) spends the days it started late (``started_days``) while the budget
lasts; the late policy then charges only the lateness those days did not cover. A
student not graded spends nothing. The cutoff is unchanged: a commit past the late
window is still not graded, whatever is left in the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from grader.records import Grade, LateDayUse, LatePenalty, StudentOutcome
from grader.scoring.grade import round_points
from grader.scoring.late import DAY, describe_lateness, late_penalty, started_days


def spend_late_days(outcomes: Sequence[StudentOutcome], budget: int) -> list[StudentOutcome]:
    """One student's outcomes, in deadline order, with the budget spent on them."""
    used = 0
    spent_on: list[StudentOutcome] = []
    for outcome in outcomes:
        grade = outcome.grade if outcome.status == "graded" else None
        spend = min(days_needed(outcome), budget - used) if grade is not None else 0
        used += spend
        use = LateDayUse(spend, used, budget)
        if grade is not None and spend:
            grade = _regraded(grade, outcome.lateness, spend, outcome)
            spent_on.append(replace(outcome, grade=grade, late_days=use))
        else:
            spent_on.append(replace(outcome, late_days=use))
    return spent_on


def days_needed(outcome: StudentOutcome) -> int:
    """The late days a submission would spend: the days it started late, past the grace."""
    grace = timedelta(minutes=outcome.assignment.late.grace_minutes)
    return started_days(outcome.lateness) if outcome.lateness > grace else 0


def _regraded(grade: Grade, lateness: timedelta, spend: int, outcome: StudentOutcome) -> Grade:
    rest = max(lateness - spend * DAY, timedelta())
    days = f"{spend} late day{'s' if spend != 1 else ''} from your budget"
    if rest <= timedelta():
        late = LatePenalty(
            lateness, 0, 0.0, f"{describe_lateness(lateness)} late, covered by {days}"
        )
    else:
        charged = late_penalty(rest, outcome.assignment.late)
        late = LatePenalty(
            lateness, charged.days, charged.percent, f"{days}, then {charged.reason}"
        )
    penalty = round_points(grade.raw_points * late.percent / 100)
    return replace(
        grade,
        late=late,
        penalty_points=penalty,
        score=max(round_points(grade.raw_points - penalty), 0.0),
    )
