"""Canvas: the gradebook CSV that Grades > Import reads.

Rules from Canvas's importer (``GradebookImporter`` in canvas-lms):

* the header is ``Student,ID,SIS User ID,SIS Login ID,Section`` then the assignment
  column, ``<Title> (<assignment id>)``: Canvas takes the number in the trailing
  parentheses as the assignment id; a column without one creates a new assignment;
* a row whose first cell contains ``Points Possible`` (Canvas writes four spaces before
  it) sets points possible, so it carries ``max_points`` in the assignment column;
* a student is found by ``ID`` (the Canvas user id, digits), then ``SIS User ID``, then
  ``SIS Login ID``: each student needs one of them (matching by name is not trusted);
* headers containing "Current Score", "Final Grade" and the like are read-only total
  columns that Canvas drops, so such a title is refused rather than silently ignored;
* an empty cell is "no score": Canvas lists it as a change when a score exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from grader.config import Assignment
from grader.errors import ConfigError
from grader.reports.excerpt import number_text, safe_text
from grader.reports.lms.sheet import (
    IdentityProblem,
    LmsExport,
    LmsFormat,
    check_identities,
    csv_bytes,
    identity_problem,
    lms_setting,
    not_graded_ids,
    score_cell,
    setting_key,
)
from grader.reports.student_view import StudentView
from grader.roster import Student

FILE = "canvas.csv"
STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "    Points Possible"
# Canvas drops any column whose header contains one of these (its computed totals)
TOTAL_COLUMNS = (
    "Current Score",
    "Current Points",
    "Current Grade",
    "Final Score",
    "Final Points",
    "Final Grade",
    "Override Score",
    "Override Grade",
    "Override Status",
)
_TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z", re.DOTALL)  # Canvas's own pattern


def canvas_csv(outcomes: Sequence[StudentView], assignment: Assignment) -> LmsExport:
    """The Canvas gradebook import file for one assignment, students in the order given."""
    column, warnings = assignment_column(assignment)
    check_identities("Canvas", assignment, _problems(outcomes))
    points_row = [POINTS_POSSIBLE, "", "", "", "", number_text(assignment.max_points)]
    rows = [[*STUDENT_COLUMNS, column], points_row]
    rows += [_row(o) for o in outcomes]
    blank = not_graded_ids(outcomes)
    if blank:
        warnings.append(
            f"{len(blank)} student(s) not graded have an empty cell ({', '.join(blank)}): "
            "Canvas reads it as no score, so where Canvas already holds a score its import "
            "preview lists the change; untick it there to keep that score"
        )
    return LmsExport({FILE: csv_bytes(rows)}, rows=len(outcomes), warnings=tuple(warnings))


def assignment_column(assignment: Assignment) -> tuple[str, list[str]]:
    """The assignment column's header and the warnings it brings."""
    title = assignment.title or assignment.id
    for word in TOTAL_COLUMNS:
        if word.lower() in title.lower():
            raise ConfigError(
                f"the title {title!r} contains {word!r}: Canvas treats such a column as a "
                "read-only total and ignores it on import; rename the assignment",
                where=f"assignments.{assignment.id}.title",
            )
    canvas_id = lms_setting(assignment, "canvas_assignment_id")
    if canvas_id is not None:
        if not canvas_id.isdigit():
            raise ConfigError(
                f"{canvas_id!r} is not a Canvas assignment id (the number after "
                "/assignments/ in the assignment's address)",
                where=setting_key(assignment, "canvas_assignment_id"),
            )
        return safe_text(f"{title} ({canvas_id})"), []
    if _TITLE_AND_ID.match(title):
        raise ConfigError(
            f"the title {title!r} ends with a number in parentheses, which Canvas reads as "
            "an assignment id: set canvas_assignment_id",
            where=setting_key(assignment, "canvas_assignment_id"),
        )
    return safe_text(title), [
        f"no canvas_assignment_id for {assignment.id}: the column is the bare title "
        f"{title!r}, so Canvas creates a new assignment on import; set "
        f"{setting_key(assignment, 'canvas_assignment_id')} to update the existing one"
    ]


def _row(outcome: StudentView) -> list[str]:
    student = outcome.student
    return [
        safe_text(student.name or student.student_id),
        student.canvas_id,
        student.sis_user_id,
        student.sis_login_id,
        safe_text(student.section),
        score_cell(outcome),
    ]


def _problems(outcomes: Sequence[StudentView]) -> list[IdentityProblem]:
    found = []
    for outcome in outcomes:
        problem = student_problem(outcome.student)
        if problem:
            found.append(IdentityProblem(outcome.student, problem))
    return found


def student_problem(student: Student) -> str | None:
    """Why Canvas could not find this student, or None."""
    if student.canvas_id and not student.canvas_id.isdigit():
        return f"canvas_id {student.canvas_id!r} is not a Canvas user id (digits only)"
    fields = {
        "sis_user_id": student.sis_user_id,
        "sis_login_id": student.sis_login_id,
    }
    for column, value in fields.items():
        problem = identity_problem(column, value) if value else None
        if problem:
            return problem
    if not (student.canvas_id or student.sis_user_id or student.sis_login_id):
        return "no canvas_id, sis_user_id or sis_login_id"
    return None


FORMAT = LmsFormat("canvas", canvas_csv, settings=("canvas_assignment_id",))
"""This format as `grader export --lms canvas` knows it."""
