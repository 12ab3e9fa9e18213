"""`grader override` and `grader regrade`: an instructor's changes to a grade, kept with
when and why.

An override lives in the state's ``overrides`` table, apart from the grades every run
writes, so it survives any regrade: outputs apply the one in force when they are written
(``grader.outputs.stored_outcomes``), and tell the instructor when the grade under it
changed. A regrade reruns one student (``--force``) and records the grade before and
after with the reason; `history.csv` shows both. Nothing here prints or exits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from grader.config import Course, load_course
from grader.errors import ConfigError
from grader.grading import GradeOptions, GradeReport, grade, report
from grader.lock import course_lock
from grader.outputs import AssignmentOutputs, stored_outcomes
from grader.pipeline import Progress
from grader.records import OverrideKind, StudentOutcome
from grader.roster import Student, load_roster
from grader.state import StoredOverride, StoredRegrade, open_state


@dataclass(frozen=True)
class OverrideChange:
    """What `grader override` did: the override set or removed, and the outcome now."""

    override: StoredOverride | None  # None: there was nothing to remove
    outcome: StudentOutcome
    outputs: AssignmentOutputs


@dataclass(frozen=True)
class RegradeResult:
    """What `grader regrade` did: the run, and the student's grade before and after."""

    report: GradeReport
    regrade: StoredRegrade
    outcome: StudentOutcome  # after, with any override applied


def set_override(
    course_dir: Path,
    assignment_id: str,
    student_id: str,
    *,
    kind: OverrideKind,
    value: float,
    reason: str,
    show_reason: bool = False,
    out_dir: Path | None = None,
) -> OverrideChange:
    """Store an override (replacing one in force) and rewrite the assignment's outputs."""
    if not math.isfinite(value):
        raise ConfigError(f"--{kind} must be a finite number, not {value}")
    if kind == "score" and value < 0:
        raise ConfigError(f"--score must be 0 or more, not {value:g}")
    if not reason.strip():
        raise ConfigError("--reason is required: say why the grade changes")
    course, student = _course_and_student(course_dir, assignment_id, student_id)
    with course_lock(course.state_dir), open_state(course.state_dir) as state:
        latest = {g.student_id: g for g in state.latest_grades(assignment_id)}
        stored = latest.get(student_id)
        graded = stored.score if stored is not None and stored.status == "graded" else None
        override = state.set_override(
            assignment_id,
            student_id,
            kind=kind,
            value=value,
            reason=reason.strip(),
            show_reason=show_reason,
            graded_score=graded,
        )
    return _change(course, assignment_id, student, override, out_dir)


def remove_override(
    course_dir: Path,
    assignment_id: str,
    student_id: str,
    *,
    reason: str = "",
    out_dir: Path | None = None,
) -> OverrideChange:
    """End the override in force (None when there is none) and rewrite the outputs."""
    course, student = _course_and_student(course_dir, assignment_id, student_id)
    with course_lock(course.state_dir), open_state(course.state_dir) as state:
        removed = state.remove_override(
            assignment_id, student_id, reason.strip() or "removed by the instructor"
        )
    return _change(course, assignment_id, student, removed, out_dir)


def list_overrides(
    course_dir: Path, *, assignments: Sequence[str] = (), students: Sequence[str] = ()
) -> list[StudentOutcome]:
    """Every outcome under an override in force, by assignment, in roster order."""
    course = load_course(course_dir)
    roster = load_roster(course.roster)
    chosen = [course.assignment(a).id for a in assignments] or list(course.assignments)
    found: list[StudentOutcome] = []
    with open_state(course.state_dir) as state:
        for assignment_id in chosen:
            assignment = course.assignment(assignment_id)
            outcomes = stored_outcomes(state, assignment, roster, course=course)
            found.extend(
                o
                for o in outcomes
                if o.override is not None and (not students or o.student.student_id in students)
            )
    return found


def regrade(
    course_dir: Path,
    assignment_id: str,
    student_id: str,
    *,
    reason: str,
    engine_url: str | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
) -> RegradeResult:
    """Run one student again (as ``--force``) and record before, after and why."""
    if not reason.strip():
        raise ConfigError("--reason is required: say why the student is regraded")
    course, student = _course_and_student(course_dir, assignment_id, student_id)
    assignment = course.assignment(assignment_id)
    with open_state(course.state_dir) as state:
        before = {g.student_id: g for g in state.latest_grades(assignment_id)}.get(student_id)
    options = GradeOptions(
        course_dir=course_dir,
        assignments=(assignment_id,),
        students=(student_id,),
        force=True,
        engine_url=engine_url,
        out_dir=out_dir,
    )
    result = grade(options, progress=progress)
    (after,) = [o for o in result.summary.outcomes if o.student.student_id == student_id]
    record = StoredRegrade(
        run_id=result.summary.run_id,
        assignment=assignment_id,
        student_id=student_id,
        reason=reason.strip(),
        before_status=before.status if before else None,
        before_score=before.score if before else None,
        after_status=after.status,
        after_score=after.grade.score if after.grade and after.status == "graded" else None,
        created_at=datetime.now(UTC),
    )
    with open_state(course.state_dir) as state:
        state.record_regrade(record)
    # history.csv gains the regrade's reason; the rest is what the run wrote
    (outputs,) = report(course_dir, assignments=(assignment.id,), out_dir=out_dir)
    now = next(o for o in outputs.outcomes if o.student.student_id == student.student_id)
    return RegradeResult(result, record, now)


def _course_and_student(
    course_dir: Path, assignment_id: str, student_id: str
) -> tuple[Course, Student]:
    course = load_course(course_dir)
    course.assignment(assignment_id)  # raises ConfigError naming the known ones
    roster = load_roster(course.roster)
    student = next((s for s in roster if s.student_id == student_id), None)
    if student is None:
        raise ConfigError(f"student {student_id!r} is not on the roster", file=str(course.roster))
    return course, student


def _change(
    course: Course,
    assignment_id: str,
    student: Student,
    override: StoredOverride | None,
    out_dir: Path | None,
) -> OverrideChange:
    (outputs,) = report(course.root, assignments=(assignment_id,), out_dir=out_dir)
    outcome = next(o for o in outputs.outcomes if o.student.student_id == student.student_id)
    return OverrideChange(override, outcome, outputs)
