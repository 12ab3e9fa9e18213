"""Outputs of an assignment, rebuilt from SQLite alone.

`grader grade` and `grader report` both end here, so what a run writes and what a later
report writes are the same bytes. What students read (feedback, manifests; LMS files in
``grader.exporting``) is written from each outcome's ``StudentView``, scrubbed of the
assignment's hidden material; the instructor's pages, the gradebook and the dashboard
from the outcomes themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from grader.codec import from_json
from grader.config import Assignment, Course
from grader.project_tests import read_project_files
from grader.records import OverrideKind, ScoreOverride, StudentOutcome, never_graded
from grader.reports.course_page import write_course_page
from grader.reports.dashboard import write_dashboard
from grader.reports.feedback import write_feedback
from grader.reports.gradebook import (
    build_gradebook,
    build_history,
    write_gradebook,
    write_history,
)
from grader.reports.hidden import HiddenMaterial, hidden_material
from grader.reports.instructor import write_instructor_views
from grader.reports.manifest import write_manifests
from grader.reports.preview import PREVIEW_DIR, write_previews
from grader.reports.student_view import student_views
from grader.reports.templating import PageViews
from grader.roster import Student, id_problem
from grader.scoring.late_days import spend_late_days
from grader.scoring.overrides import apply_override
from grader.state import State, StoredOverride

GRADEBOOK = "gradebook.csv"
HISTORY = "history.csv"


@dataclass(frozen=True)
class AssignmentOutputs:
    assignment: str
    directory: Path
    outcomes: tuple[StudentOutcome, ...]


def stored_outcomes(
    state: State,
    assignment: Assignment,
    roster: Sequence[Student],
    *,
    course: Course | None = None,
) -> list[StudentOutcome]:
    """The latest outcome of every roster student, in roster order; never graded -> not graded.

    With ``course`` (pass it: only it knows the term), the course's late-day budget is
    spent over the assignments due up to this one (``grader.scoring.late_days``). Then
    the instructor's override in force, if any, is applied (``grader.scoring.overrides``):
    every output and export reads the score they give."""
    outcomes = _latest_outcomes(state, assignment, roster)
    if course is not None and course.late_day_budget is not None:
        outcomes = _with_late_days(state, course, assignment, roster, outcomes)
    overrides = state.active_overrides(assignment.id)
    return [
        apply_override(o, score_override(overrides[o.student.student_id]))
        if o.student.student_id in overrides
        else o
        for o in outcomes
    ]


def _latest_outcomes(
    state: State, assignment: Assignment, roster: Sequence[Student]
) -> list[StudentOutcome]:
    latest = {g.student_id: g for g in state.latest_grades(assignment.id)}
    outcomes = []
    for student in roster:
        stored = latest.get(student.student_id)
        if stored is None:
            outcomes.append(never_graded(student, assignment))
        else:
            # identities come from the roster as it is now (a fixed e-mail shows up at once)
            outcomes.append(
                replace(from_json(StudentOutcome, stored.outcome_json), student=student)
            )
    return outcomes


def _with_late_days(
    state: State,
    course: Course,
    assignment: Assignment,
    roster: Sequence[Student],
    outcomes: Sequence[StudentOutcome],
) -> list[StudentOutcome]:
    """``outcomes`` after each student spent their budget on every assignment due before."""
    budget = course.late_day_budget or 0
    earlier = [
        _latest_outcomes(state, a, roster)
        for a in sorted(course.assignments.values(), key=lambda a: (a.deadline, a.id))
        if (a.deadline, a.id) < (assignment.deadline, assignment.id)
    ]
    return [
        spend_late_days([*(column[row] for column in earlier), outcome], budget)[-1]
        for row, outcome in enumerate(outcomes)
    ]


def score_override(stored: StoredOverride) -> ScoreOverride:
    """The record of a stored override."""
    kind: OverrideKind = "adjust" if stored.kind == "adjust" else "score"
    return ScoreOverride(
        kind=kind,
        value=stored.value,
        reason=stored.reason,
        created_at=stored.created_at,
        graded_score=stored.graded_score,
        show_reason=stored.show_reason,
    )


def write_assignment_outputs(
    course: Course,
    assignment: Assignment,
    state: State,
    roster: Sequence[Student],
    out_root: Path,
    *,
    pages: PageViews | None = None,
) -> AssignmentOutputs:
    """Write feedback, gradebook and the rest for one assignment from stored grades.

    A student's page that ``pages`` saw written from the same view (``StudentPages``,
    during the run) is left as it is: it holds these very bytes."""
    outcomes = stored_outcomes(state, assignment, roster, course=course)
    directory = out_root / assignment.id
    directory.mkdir(parents=True, exist_ok=True)
    # a roster row whose id cannot be a file name still gets its gradebook row
    nameable = [o for o in outcomes if id_problem(o.student.student_id) is None]
    views = student_views(nameable, assignment_hidden_material(course, assignment, outcomes))
    zone = course.timezone
    write_feedback(views, directory, zone=zone, pages=pages)
    write_instructor_views(nameable, directory, zone=zone, pages=pages)
    write_gradebook(build_gradebook(outcomes), directory / GRADEBOOK)
    history = build_history(
        state.grade_history(assignment.id),
        overrides=state.override_history(assignment.id),
        regrades=state.regrades(assignment.id),
    )
    write_history(history, directory / HISTORY)
    write_manifests(views, directory, pages=pages)
    write_dashboard(
        outcomes, assignment, directory, zone=zone, similar=state.similar_pairs(assignment.id)
    )
    return AssignmentOutputs(assignment.id, directory, tuple(outcomes))


class StudentPages:
    """Each student's feedback, instructor view and manifest, written as their result
    comes in during ``grader grade``.

    The outputs written at the end of the run read every outcome back from SQLite and
    find these pages' views unchanged (``PageViews``), so they neither render nor write
    them after the last result. A page whose view differs by then (an override, the
    hidden material of later results, the due date passing) is written again there: the
    end of the run alone decides what the files hold.
    """

    def __init__(self, course: Course, out_root: Path) -> None:
        self.course = course
        self.out_root = out_root
        self.pages = PageViews()
        self._files: dict[str, dict[str, str]] = {}  # each assignment's project files
        self._names: dict[str, set[str]] = {}  # hidden test names seen per assignment
        self._material: dict[str, tuple[frozenset[str], HiddenMaterial]] = {}

    def write(self, outcome: StudentOutcome) -> None:
        """Write ``outcome``'s pages as the end of the run will see them from SQLite."""
        if self.course.late_day_budget is not None:
            return  # the end spends late days over every assignment: these would differ
        if id_problem(outcome.student.student_id) is not None:
            return
        assignment = self.course.assignment(outcome.assignment.id)
        # as stored: SQLite's JSON reads back into an equal record (grader.codec)
        views = student_views([outcome], self._hidden(assignment, outcome))
        directory = self.out_root / assignment.id
        zone = self.course.timezone
        write_feedback(views, directory, zone=zone, pages=self.pages)
        write_instructor_views([outcome], directory, zone=zone, pages=self.pages)
        write_manifests(views, directory, pages=self.pages)

    def _hidden(self, assignment: Assignment, outcome: StudentOutcome) -> HiddenMaterial:
        """The assignment's hidden material, from the hidden test names seen so far."""
        names = self._names.setdefault(assignment.id, set())
        names |= _hidden_test_names([outcome])
        known = self._material.get(assignment.id)
        if known is not None and known[0] == names:
            return known[1]
        files = self._files.get(assignment.id)
        if files is None:
            files = self._files[assignment.id] = read_project_files(
                self.course.projects_dir / assignment.project
            )
        material = hidden_material(
            files, assignment.tests, hidden_files=assignment.hidden_files, report_names=names
        )
        self._material[assignment.id] = (frozenset(names), material)
        return material


def write_preview_outputs(
    course: Course,
    assignment: Assignment,
    outcomes: Sequence[StudentOutcome],
    out_root: Path,
    *,
    now: datetime,
) -> AssignmentOutputs:
    """Write ``preview/<student_id>.md`` for the outcomes of a preview run (nothing else)."""
    directory = out_root / assignment.id
    nameable = [o for o in outcomes if id_problem(o.student.student_id) is None]
    views = student_views(nameable, assignment_hidden_material(course, assignment, outcomes))
    write_previews(views, directory, now=now)
    return AssignmentOutputs(assignment.id, directory / PREVIEW_DIR, tuple(outcomes))


def write_course_outputs(
    course: Course, state: State, roster: Sequence[Student], out_root: Path
) -> Path:
    """Write the course page (``OUT/index.html``) from every assignment's stored outcomes."""
    outcomes = {
        a.id: stored_outcomes(state, a, roster, course=course)
        for a in sorted(course.assignments.values(), key=lambda a: (a.deadline, a.id))
    }
    return write_course_page(course.name, outcomes, out_root, zone=course.timezone)


def assignment_hidden_material(
    course: Course, assignment: Assignment, outcomes: Sequence[StudentOutcome]
) -> HiddenMaterial:
    """What no student of ``assignment`` may read: from its project folder, rules and reports."""
    files = read_project_files(course.projects_dir / assignment.project)
    return hidden_material(
        files,
        assignment.tests,
        hidden_files=assignment.hidden_files,
        report_names=_hidden_test_names(outcomes),
    )


def _hidden_test_names(outcomes: Sequence[StudentOutcome]) -> set[str]:
    return {
        t.name
        for o in outcomes
        if o.grade is not None
        for t in o.grade.tests
        if t.visibility == "hidden"
    }
