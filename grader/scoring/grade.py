"""One submission's grade from its tests, the engine's score and its lateness. Pure.

How the raw points are found, first that applies:

1. the assignment gives test rules: the points of the passing tests (``points.py``);
2. the report carries its own points (Gradescope ``results.json``): their sum;
3. the engine gave a score: read as the percentage of tests ok (0-100, what the local
   engine reports without project weights) and scaled to ``max_points``;
4. the report lists tests: the fraction of them ok, scaled to ``max_points``;
5. nothing at all: 0 (still a grade: a build error or a timeout is the student's).

Raw points are capped to ``[0, max_points]``; the late penalty is a percentage of them
(``late.py``); every number is rounded to hundredths, half up.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from grader.config import Assignment
from grader.records import Grade, GradeBasis, TestOutcome, TestScore
from grader.scoring.late import late_penalty
from grader.scoring.points import price_tests, test_score


def grade_submission(
    tests: Sequence[TestOutcome],
    assignment: Assignment,
    *,
    engine_score: float | None,
    lateness: timedelta,
    defined: Collection[str] = (),
) -> Grade:
    """Score one submission from its parsed tests, the engine's score and its lateness.

    ``defined`` names the tests the project defines; those a rule prices and the report
    lacks are "did not run" (``points.price_tests``).
    """
    scored, raw, basis, warnings = _raw_points(tests, assignment, engine_score, defined)
    max_score = round_points(assignment.max_points)
    raw = min(max(round_points(raw), 0.0), max_score)
    late = late_penalty(lateness, assignment.late)
    penalty = round_points(raw * late.percent / 100)
    return Grade(
        score=max(round_points(raw - penalty), 0.0),
        max_score=max_score,
        raw_points=raw,
        penalty_points=penalty,
        late=late,
        basis=basis,
        tests=scored,
        warnings=tuple(warnings),
    )


def round_points(value: float) -> float:
    """Hundredths, half up, without float noise: 2.675 -> 2.68, 0.1 + 0.2 -> 0.3."""
    rounded = Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return float(rounded) + 0.0  # + 0.0 turns -0.0 into 0.0


def _raw_points(
    tests: Sequence[TestOutcome],
    assignment: Assignment,
    engine_score: float | None,
    defined: Collection[str],
) -> tuple[tuple[TestScore, ...], float, GradeBasis, list[str]]:
    max_points = assignment.max_points
    if assignment.tests:
        priced = price_tests(tests, assignment.tests, defined)
        earned = sum(t.points_earned for t in priced.tests)
        warnings = [*priced.warnings, *_total_check(priced.tests, max_points)]
        return priced.tests, earned, "test points", warnings
    if any(t.points is not None for t in tests):
        scored = tuple(_report_priced(t) for t in tests)
        return scored, sum(t.points_earned for t in scored), "report points", []
    unpriced = tuple(_unpriced(t) for t in tests)
    if engine_score is not None:
        percent = min(max(engine_score, 0.0), 100.0)
        return unpriced, percent / 100 * max_points, "engine score", []
    if tests:
        passed = sum(1 for t in tests if t.status == "ok")
        return unpriced, passed / len(tests) * max_points, "tests passed", []
    return (), 0.0, "no result", []


def _total_check(tests: Sequence[TestScore], max_points: float) -> list[str]:
    """Warn when a complete report's tests cannot add up to exactly ``max_points``."""
    if not tests or any(t.status == "did not run" for t in tests):
        return []  # an incomplete report says nothing about the configuration
    possible = round_points(sum(t.points_possible for t in tests))
    if possible == round_points(max_points):
        return []
    return [
        f"the tests in this report are worth {possible:g} points but max_points is "
        f"{max_points:g}; points are not scaled"
    ]


def _report_priced(test: TestOutcome) -> TestScore:
    earned = test.points or 0.0
    possible = test.max_points if test.max_points is not None else max(earned, 0.0)
    return test_score(
        test, possible=possible, earned=earned, visibility=test.visibility or "visible"
    )


def _unpriced(test: TestOutcome) -> TestScore:
    return test_score(test, possible=0.0, earned=0.0, visibility=test.visibility or "visible")
