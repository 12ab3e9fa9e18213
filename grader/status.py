"""`grader status`: where every student stands, from SQLite alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from grader.config import load_course
from grader.roster import load_roster
from grader.state import open_state


@dataclass(frozen=True)
class StudentStatus:
    assignment: str
    student_id: str
    name: str
    commit: str | None
    score: float | None
    state: str  # graded / not graded / never graded / submitted (waiting for the engine)
    when: datetime | None
    submissions: int


def course_status(course_dir: Path, *, assignments: Sequence[str] = ()) -> list[StudentStatus]:
    course = load_course(course_dir)
    roster = load_roster(course.roster)
    chosen = [course.assignment(a).id for a in assignments] or list(course.assignments)
    rows = []
    with open_state(course.state_dir) as state:
        for assignment_id in chosen:
            latest = {g.student_id: g for g in state.latest_grades(assignment_id)}
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
                        score=grade.score if grade else None,
                        state=label,
                        when=grade.created_at if grade else None,
                        submissions=sum(1 for s in submissions if s.engine_id is not None),
                    )
                )
    return rows


def _commit_of(outcome_json: str) -> str | None:
    import json

    commit = json.loads(outcome_json).get("commit")
    return str(commit) if commit else None
