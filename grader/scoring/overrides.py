"""An instructor's override applied to a graded outcome. Pure.

The outcome keeps everything the run learned; only its grade's ``score`` changes (and a
student who was not graded gets a grade when the instructor sets one), so every output
that reads ``grade.score`` (gradebook, feedback, every LMS export) shows the overridden
score without knowing overrides exist. The record itself rides along on
``StudentOutcome.override`` for the pages that say so.
"""

from __future__ import annotations

from dataclasses import replace

from grader.records import NO_PENALTY, Grade, ScoreOverride, StudentOutcome
from grader.scoring.grade import round_points


def apply_override(outcome: StudentOutcome, override: ScoreOverride) -> StudentOutcome:
    """``outcome`` with ``override`` applied (see the module docstring)."""
    graded = outcome.grade if outcome.status == "graded" else None
    noted = replace(override, current_score=graded.score if graded else None)
    if override.kind == "adjust":
        if graded is None:  # nothing to adjust: kept, so the instructor sees it
            return replace(outcome, override=noted)
        score = max(round_points(graded.score + override.value), 0.0)
        return replace(outcome, grade=replace(graded, score=score), override=noted)
    score = max(round_points(override.value), 0.0)
    if graded is not None:
        return replace(outcome, grade=replace(graded, score=score), override=noted)
    max_score = round_points(outcome.assignment.max_points)
    grade = Grade(score, max_score, 0.0, 0.0, NO_PENALTY, "override")
    return replace(outcome, status="graded", grade=grade, override=noted)


def override_note(override: ScoreOverride) -> str:
    """What the instructor should know about an override now ('' when nothing)."""
    if not override.applies:
        return "nothing to adjust: the student is not graded"
    if not override.grade_changed:
        return ""
    before = "not graded" if override.graded_score is None else f"{override.graded_score:g}"
    now = "not graded" if override.current_score is None else f"{override.current_score:g}"
    return f"the grade under this override changed: {before} when it was set, {now} now"
