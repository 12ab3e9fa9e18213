"""`grader status`: where every student stands, from SQLite alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from grader.commits import when_text
from grader.config import load_course
from grader.outputs import stored_outcomes
from grader.records import StudentOutcome
from grader.roster import load_roster
from grader.state import StoredGrade, open_state


@dataclass(frozen=True)
class StudentStatus:
    assignment: str
    student_id: str
    name: str
    commit: str | None
    score: float | None
    state: str  # graded / not graded / never graded / submitted (waiting for the engine)
    when: datetime | None
    # engine runs of this student's work: their own, one reused, and --preview runs too
    submissions: int
    override: str = ""  # the instructor's override in force ("score 90"), which score shows
    zone: tzinfo | None = None  # course.timezone: how ``when`` is shown

    @property
    def when_text(self) -> str:
        """'2026-09-18 23:59 EDT' in the course's time zone (UTC without one); '' never."""
        return when_text(self.when, self.zone) if self.when else ""


def course_status(course_dir: Path, *, assignments: Sequence[str] = ()) -> list[StudentStatus]:
    course = load_course(course_dir)
    roster = load_roster(course.roster)
    chosen = [course.assignment(a).id for a in assignments] or list(course.assignments)
    rows = []
    with open_state(course.state_dir) as state:
        for assignment_id in chosen:
            latest = {g.student_id: g for g in state.latest_grades(assignment_id)}
            # the scores the outputs show: late days spent, the override in force applied
            shown = {
                o.student.student_id: o
                for o in stored_outcomes(
                    state, course.assignment(assignment_id), roster, course=course
                )
            }
            graded_by = _runs_behind_grades(state.grade_history(assignment_id))
            for student in roster:
                submissions = state.submissions_of(assignment_id, student.student_id)
                grade = latest.get(student.student_id)
                pending = [s for s in submissions if s.state in ("creating", "created")]
                if grade is None:
                    label = "submitted" if pending else "never graded"
                else:
                    label = grade.status
                rows.append(
                    StudentStatus(
                        assignment=assignment_id,
                        student_id=student.student_id,
                        name=student.name,
                        commit=_commit_of(grade.outcome_json) if grade else None,
                        score=_score(shown[student.student_id]),
                        state=label,
                        when=grade.created_at if grade else None,
                        submissions=len(
                            graded_by.get(student.student_id, set())
                            | {s.engine_id for s in submissions if s.engine_id is not None}
                        ),
                        override=_override(shown[student.student_id]),
                        zone=course.timezone,
                    )
                )
    return rows


def _score(outcome: StudentOutcome) -> float | None:
    return outcome.grade.score if outcome.status == "graded" and outcome.grade else None


def _override(outcome: StudentOutcome) -> str:
    override = outcome.override
    return override.describe() if override is not None and override.applies else ""


def _runs_behind_grades(grades: Sequence[StoredGrade]) -> dict[str, set[int]]:
    """Student -> the engine submissions their grades came from. A workspace identical to
    one already run reuses that run (its submission row is the first student's), so the
    grades, not the submission rows, say which runs graded a student."""
    runs: dict[str, set[int]] = {}
    for grade in grades:
        submission = json.loads(grade.outcome_json).get("submission_id")
        if isinstance(submission, int):
            runs.setdefault(grade.student_id, set()).add(submission)
    return runs


def _commit_of(outcome_json: str) -> str | None:
    commit = json.loads(outcome_json).get("commit")
    return str(commit) if commit else None
