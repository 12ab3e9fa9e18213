"""What every LMS file shares: the export record, score cells, identities, CSV bytes.

Rules common to every importer:

* a student "not graded" never gets a zero: the score cell is empty (Moodle: ``-``);
* an identity the LMS matches students on must be present, printable and must not start
  like a formula (it cannot be neutralised: an apostrophe would stop it matching), and
  every student lacking one is named in one ``ExportError``;
* free text (names, sections, titles) goes through ``safe_text``, so a spreadsheet
  never runs it as a formula;
* CSV is UTF-8 without a byte order mark, RFC 4180 line ends (``\\r\\n``): the same
  records always give the same bytes.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from grader.config import Assignment
from grader.errors import ExportError
from grader.records import Grade, StudentOutcome
from grader.reports.excerpt import number_text, safe_text
from grader.roster import Student

LINE_END = "\r\n"  # RFC 4180; every importer reads it, and Excel keeps it


@dataclass(frozen=True)
class LmsExport:
    """The files one LMS import needs, by path relative to ``OUT/<assignment>/``.

    ``stale`` names files an earlier export may have left that must not stay (a student
    graded then, not graded now). ``rows`` counts the students written.
    """

    files: Mapping[str, bytes]
    rows: int
    warnings: tuple[str, ...] = ()
    stale: tuple[str, ...] = field(default=())


LmsWriter = Callable[..., LmsExport]
"""``(student views in roster order, assignment, **options) -> LmsExport``.

A writer takes ``Sequence[StudentView]`` (``grader.reports.student_view``): what it
writes reaches students, so it only ever sees what they may see."""


@dataclass(frozen=True)
class LmsOption:
    """A flag of `grader export` that one format accepts (passed to its writer)."""

    name: str  # the writer's keyword and the flag: --<name>
    help: str
    refusal: str  # said when another format is asked for it; {lms!r} names that format


@dataclass(frozen=True)
class LmsFormat:
    """One LMS import format, declared by its module: everything the rest needs to know.

    ``settings`` are the keys it reads under ``[assignments.<id>.lms]`` in course.toml.
    """

    name: str
    write: LmsWriter
    settings: tuple[str, ...] = ()
    options: tuple[LmsOption, ...] = ()


@dataclass(frozen=True)
class IdentityProblem:
    """Why one student cannot be matched by an LMS."""

    student: Student
    problem: str


def graded(outcome: StudentOutcome) -> Grade | None:
    """The grade to export, or None for a student who is not graded."""
    return outcome.grade if outcome.status == "graded" else None


def score_cell(outcome: StudentOutcome, *, blank: str = "") -> str:
    """The score as an importer reads it ('82.5', '100'); ``blank`` when not graded."""
    grade = graded(outcome)
    return number_text(grade.score) if grade else blank


def identity_problem(column: str, value: str) -> str | None:
    """Why ``value`` cannot identify a student in ``column``, or None if it can."""
    if not value:
        return f"no {column}"
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        return f"{column} {value!r} has a control character"
    if value != value.strip():
        return f"{column} {value!r} has spaces around it"
    if safe_text(value) != value:
        # neutralising it would change it, and then it would match nobody
        return f"{column} {value!r} starts with {value[0]!r}, which a spreadsheet runs as a formula"
    return None


def check_identities(lms: str, assignment: Assignment, problems: Iterable[IdentityProblem]) -> None:
    """Raise one ``ExportError`` naming every student the LMS could not match."""
    found = list(problems)
    if not found:
        return
    lines = "\n".join(
        f"  {p.student.student_id} (roster line {p.student.line}): {p.problem}"
        if p.student.line
        else f"  {p.student.student_id}: {p.problem}"
        for p in found
    )
    raise ExportError(
        f"cannot export {assignment.id} to {lms}: {len(found)} student(s) lack what {lms} "
        f"matches students on; add it to the roster:\n{lines}"
    )


def csv_bytes(
    rows: Iterable[Sequence[str]], *, delimiter: str = ",", quote_all: bool = False
) -> bytes:
    """Rows as CSV text in UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        lineterminator=LINE_END,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def not_graded_ids(outcomes: Iterable[StudentOutcome]) -> list[str]:
    """Student ids of everyone not graded, in the order given."""
    return [o.student.student_id for o in outcomes if graded(o) is None]


def lms_setting(assignment: Assignment, key: str) -> str | None:
    """An ``[assignments.<id>.lms]`` value, blank treated as absent."""
    value = assignment.lms.get(key, "").strip()
    return value or None


def setting_key(assignment: Assignment, key: str) -> str:
    """The dotted course.toml key of an LMS setting, for messages."""
    return f"assignments.{assignment.id}.lms.{key}"
