"""Brightspace (D2L): the file that Grades > Enter Grades > Import reads.

Rules from D2L's "Importing grades" documentation:

* the first columns are ``OrgDefinedId`` and ``Username`` (the roster's ``sis_user_id``
  and ``sis_login_id``); each student needs at least one of them;
* identities carry a leading ``#`` (as Brightspace's own export writes them), so a
  spreadsheet keeps leading zeros and never reads them as numbers or formulas;
* a numeric grade item's column is ``<Item> Points Grade``, where ``<Item>`` is the
  grade item's name in Brightspace (``brightspace_item``, else the assignment title);
  Brightspace matches items by that name;
* the last column is ``End-of-Line Indicator`` holding ``#`` on every row, so an empty
  grade (a student not graded) is still read as empty rather than as a short row.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.config import Assignment
from grader.reports.excerpt import safe_text
from grader.reports.lms.sheet import (
    IdentityProblem,
    LmsExport,
    LmsFormat,
    check_identities,
    csv_bytes,
    identity_problem,
    lms_setting,
    score_cell,
    setting_key,
)
from grader.reports.student_view import StudentView
from grader.roster import Student

FILE = "brightspace.csv"
END_OF_LINE = "End-of-Line Indicator"
MARK = "#"


def brightspace_csv(outcomes: Sequence[StudentView], assignment: Assignment) -> LmsExport:
    """The Brightspace grades import file for one assignment, students in the order given."""
    item = lms_setting(assignment, "brightspace_item")
    warnings = []
    if item is None:
        item = assignment.title or assignment.id
        warnings.append(
            f"no brightspace_item for {assignment.id}: the column is named after the title "
            f"{item!r}, and Brightspace matches grade items by name (set "
            f"{setting_key(assignment, 'brightspace_item')} to the grade item's name)"
        )
    problems = [
        IdentityProblem(o.student, problem)
        for o in outcomes
        if (problem := student_problem(o.student))
    ]
    check_identities("Brightspace", assignment, problems)
    header = ["OrgDefinedId", "Username", safe_text(f"{item} Points Grade"), END_OF_LINE]
    rows = [header]
    for outcome in outcomes:
        student = outcome.student
        ids = [_marked(student.sis_user_id), _marked(student.sis_login_id)]
        rows.append([*ids, score_cell(outcome), MARK])
    return LmsExport({FILE: csv_bytes(rows)}, rows=len(outcomes), warnings=tuple(warnings))


def student_problem(student: Student) -> str | None:
    """Why Brightspace could not find this student, or None."""
    if not (student.sis_user_id or student.sis_login_id):
        return "no sis_user_id (OrgDefinedId) or sis_login_id (Username)"
    identities = (("sis_user_id", student.sis_user_id), ("sis_login_id", student.sis_login_id))
    for column, value in identities:
        problem = identity_problem(column, value) if value else None
        if problem:
            return problem
    return None


def _marked(identity: str) -> str:
    return MARK + identity if identity else ""


FORMAT = LmsFormat("brightspace", brightspace_csv, settings=("brightspace_item",))
"""This format as `grader export --lms brightspace` knows it."""
