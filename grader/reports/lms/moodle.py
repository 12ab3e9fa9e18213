"""Moodle: the CSV that Grades > Import > CSV file reads.

Rules from Moodle's importer (``grade/import/csv``):

* the instructor maps one column to a user field on the import form; this file has one
  identity column, ``Email address`` or ``ID number`` (the user's idnumber, which
  institutions fill with the SIS id), chosen by ``moodle_identity`` (default email);
* the grade column is named after the assignment (mapped to an existing grade item, or
  imported as a new one); an optional ``<Title> (Feedback)`` column can be mapped to
  that item's feedback;
* ``-`` (or an empty cell) is "no grade": a student not graded gets ``-``, never 0;
* a single grade above 100 aborts the whole import unless the site allows unlimited
  grades, so such grades are refused unless ``moodle_allow_over_100`` is true.

The feedback is written from fixed phrases and numbers only: it reaches students, so it
never carries a test's name, a message or anything the student wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grader.config import Assignment
from grader.errors import ConfigError, ExportError
from grader.records import Outcome
from grader.reports.excerpt import number_text, safe_text
from grader.reports.lms.sheet import (
    IdentityProblem,
    LmsExport,
    LmsFormat,
    check_identities,
    csv_bytes,
    graded,
    identity_problem,
    lms_setting,
    score_cell,
    setting_key,
)
from grader.reports.student_view import StudentView
from grader.roster import Student

FILE = "moodle.csv"
NO_GRADE = "-"
GRADE_LIMIT = 100.0  # Moodle's gradepointmax unless the site enables unlimited grades
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")

OUTCOME_SENTENCES = {
    Outcome.OK: "Every test passed.",
    Outcome.FAIL: "Some tests failed.",
    Outcome.BUILD_ERROR: "The code did not compile, so no test ran.",
    Outcome.RUNTIME_ERROR: "The program crashed before the tests finished.",
    Outcome.TIME_LIMIT: "The program ran past its time limit.",
}


@dataclass(frozen=True)
class MoodleIdentity:
    """One way Moodle finds a user: the column header and the roster field behind it."""

    header: str
    roster_field: str

    def of(self, student: Student) -> str:
        value: str = getattr(student, self.roster_field)
        return value


IDENTITIES = {
    "email": MoodleIdentity("Email address", "email"),
    "idnumber": MoodleIdentity("ID number", "sis_user_id"),
}


def moodle_csv(
    outcomes: Sequence[StudentView], assignment: Assignment, *, feedback: bool = True
) -> LmsExport:
    """The Moodle grade import file for one assignment, students in the order given."""
    identity = moodle_identity(assignment)
    check_identities("Moodle", assignment, _problems(outcomes, identity))
    allow_over = allow_over_100(assignment)
    if not allow_over:
        _refuse_over_limit(outcomes, assignment)
    title = safe_text(assignment.title or assignment.id)
    header = [identity.header, title] + ([f"{title} (Feedback)"] if feedback else [])
    rows = [header]
    for outcome in outcomes:
        row = [identity.of(outcome.student), score_cell(outcome, blank=NO_GRADE)]
        rows.append(row + ([feedback_text(outcome)] if feedback else []))
    warnings = []
    if assignment.max_points > GRADE_LIMIT and not allow_over:
        warnings.append(
            f"max_points {number_text(assignment.max_points)} is above Moodle's usual grade "
            f"limit of 100: a grade above 100 would stop the import (set "
            f"{setting_key(assignment, 'moodle_allow_over_100')} = true if the site allows "
            "unlimited grades)"
        )
    return LmsExport({FILE: csv_bytes(rows)}, rows=len(outcomes), warnings=tuple(warnings))


def moodle_identity(assignment: Assignment) -> MoodleIdentity:
    """The identity column chosen by ``moodle_identity`` (default: email)."""
    choice = (lms_setting(assignment, "moodle_identity") or "email").lower()
    choice = choice.replace(" ", "").replace("_", "").removesuffix("address")
    if choice not in IDENTITIES:
        raise ConfigError(
            f"unknown Moodle identity {assignment.lms['moodle_identity']!r} "
            f"(choose {' or '.join(IDENTITIES)})",
            where=setting_key(assignment, "moodle_identity"),
        )
    return IDENTITIES[choice]


def allow_over_100(assignment: Assignment) -> bool:
    """Whether ``moodle_allow_over_100`` is set to true."""
    value = (lms_setting(assignment, "moodle_allow_over_100") or "false").lower()
    if value not in TRUE_WORDS + FALSE_WORDS:
        raise ConfigError(
            f"expected true or false, got {value!r}",
            where=setting_key(assignment, "moodle_allow_over_100"),
        )
    return value in TRUE_WORDS


def feedback_text(outcome: StudentView) -> str:
    """One line a student may read in Moodle: score, outcome, tests passed, late penalty."""
    grade = graded(outcome)
    if grade is None:
        return "Not graded: no score is recorded yet (this is not a zero)."
    parts = [f"{number_text(grade.score)} / {number_text(grade.max_score)} points."]
    sentence = OUTCOME_SENTENCES.get(outcome.outcome)
    if sentence:
        parts.append(sentence)
    ran = [t for t in grade.tests if t.status != "did not run"]
    if ran:
        passed = sum(1 for t in ran if t.status == "ok")
        parts.append(f"{passed} of {len(ran)} tests passed.")
    if grade.penalty_points > 0:
        parts.append(
            f"Late penalty: {number_text(grade.penalty_points)} points "
            f"({number_text(grade.late.percent)}%)."
        )
    return " ".join(parts)


def _problems(outcomes: Sequence[StudentView], identity: MoodleIdentity) -> list[IdentityProblem]:
    found = []
    for outcome in outcomes:
        problem = identity_problem(identity.roster_field, identity.of(outcome.student))
        if problem:
            found.append(IdentityProblem(outcome.student, problem))
    return found


def _refuse_over_limit(outcomes: Sequence[StudentView], assignment: Assignment) -> None:
    over = [
        (o.student.student_id, grade.score)
        for o in outcomes
        if (grade := graded(o)) is not None and grade.score > GRADE_LIMIT
    ]
    if not over:
        return
    listed = ", ".join(f"{sid} ({number_text(score)})" for sid, score in over)
    raise ExportError(
        f"cannot export {assignment.id} to Moodle: {len(over)} grade(s) above 100, and "
        f"Moodle aborts the whole import on the first one: {listed}. Set "
        f"{setting_key(assignment, 'moodle_allow_over_100')} = true if the site allows "
        "unlimited grades"
    )


FORMAT = LmsFormat(
    "moodle",
    moodle_csv,
    # moodle_assignment_id is read by `grader publish --to moodle` (the assign instance id)
    settings=("moodle_identity", "moodle_allow_over_100", "moodle_assignment_id"),
)
"""This format as `grader export --lms moodle` knows it."""
