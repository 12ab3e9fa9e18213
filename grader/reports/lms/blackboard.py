"""Blackboard Learn: the file that Grade Center > Work Offline > Upload reads.

Rules from Blackboard's documentation of Grade Center uploads:

* students are matched by ``Username`` (the roster's ``sis_login_id``, else its
  ``student_id``);
* a column is matched by the Column ID after ``|`` in its header; Blackboard's own
  download names a column ``<Title> [Total Pts: <N> Score] |<column id>``, which this
  file repeats when ``blackboard_column_id`` is set;
* without a column id the header is the bare title: Blackboard then adds a new *text*
  column (0 points possible, left out of totals), so a warning says so;
* comma-delimited files must enclose every field in quotes; tab-delimited files (which
  Blackboard recommends) need none; both are UTF-8 here;
* an empty cell sets no grade: a student not graded is never a zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.config import Assignment
from grader.errors import ConfigError
from grader.reports.excerpt import number_text, safe_text
from grader.reports.lms.sheet import (
    IdentityProblem,
    LmsExport,
    LmsFormat,
    LmsOption,
    check_identities,
    csv_bytes,
    identity_problem,
    lms_setting,
    score_cell,
    setting_key,
)
from grader.reports.student_view import StudentView
from grader.roster import Student

COMMA_FILE = "blackboard.csv"
TAB_FILE = "blackboard.txt"  # a .csv holding tabs confuses spreadsheets
USERNAME = "Username"


def blackboard_csv(
    outcomes: Sequence[StudentView], assignment: Assignment, *, tabs: bool = False
) -> LmsExport:
    """The Grade Center upload file: every field quoted, or tab-delimited with ``tabs``."""
    column, warnings = grade_column(assignment)
    problems = [
        IdentityProblem(o.student, problem)
        for o in outcomes
        if (problem := identity_problem(_username_source(o.student), username(o.student)))
    ]
    check_identities("Blackboard", assignment, problems)
    rows = [[USERNAME, column]] + [[username(o.student), score_cell(o)] for o in outcomes]
    content = csv_bytes(rows, delimiter="\t") if tabs else csv_bytes(rows, quote_all=True)
    name = TAB_FILE if tabs else COMMA_FILE
    return LmsExport({name: content}, rows=len(outcomes), warnings=tuple(warnings))


def grade_column(assignment: Assignment) -> tuple[str, list[str]]:
    """The grade column's header and the warnings it brings."""
    title = assignment.title or assignment.id
    column_id = lms_setting(assignment, "blackboard_column_id")
    if "|" in title:
        raise ConfigError(
            f"the title {title!r} contains '|', which Blackboard reads as the start of a "
            "column id; rename the assignment",
            where=f"assignments.{assignment.id}.title",
        )
    if column_id is None:
        return safe_text(title), [
            f"no blackboard_column_id for {assignment.id}: Blackboard adds a new text column "
            f"{title!r} (0 points possible, not in totals); set "
            f"{setting_key(assignment, 'blackboard_column_id')} to the Column ID shown by "
            "Quick Column Information to update the existing column"
        ]
    if not column_id.isdigit():
        raise ConfigError(
            f"{column_id!r} is not a Blackboard Column ID (digits, as Quick Column "
            "Information shows it)",
            where=setting_key(assignment, "blackboard_column_id"),
        )
    points = number_text(assignment.max_points)
    return safe_text(f"{title} [Total Pts: {points} Score] |{column_id}"), []


def username(student: Student) -> str:
    """The Blackboard username: the SIS login id, else the roster's student id."""
    return student.sis_login_id or student.student_id


def _username_source(student: Student) -> str:
    return "sis_login_id" if student.sis_login_id else "student_id"


TABS = LmsOption(
    "tabs",
    help="Blackboard: tab-delimited instead of quoted CSV.",
    refusal="tab-delimited output is a Blackboard option; {lms!r} files are comma-separated",
)

FORMAT = LmsFormat(
    "blackboard", blackboard_csv, settings=("blackboard_column_id",), options=(TABS,)
)
"""This format as `grader export --lms blackboard` knows it."""
