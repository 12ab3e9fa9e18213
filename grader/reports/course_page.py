"""The course page, ``OUT/index.html``: every assignment and every student across the term.

A pure function (``course_view``) lays out what the latest outcomes of every assignment
say: per assignment its deadline, how many are graded and the mean, with a link to its
dashboard; per roster student their score in each assignment (linked to the instructor
page), the total, and the late days left when the course has a budget. Like the
dashboards it is for instructors (it links to pages that name hidden tests), offline (no
script, nothing fetched), and the same outcomes give the same bytes.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from urllib.parse import quote

from grader.config import Assignment
from grader.records import StudentOutcome
from grader.reports.dashboard import DASHBOARD_FILE, instructor_link
from grader.reports.excerpt import number_text, printable
from grader.reports.feedback import moment_text
from grader.reports.templating import render, write_rendered

COURSE_PAGE = "index.html"


@dataclass(frozen=True)
class AssignmentLine:
    """One assignment on the course page."""

    assignment_id: str
    title: str
    deadline: str
    max_points: str
    graded: int
    not_graded: int
    mean: str
    link: str  # its dashboard, relative to the course page


@dataclass(frozen=True)
class ScoreCell:
    """One student's result in one assignment: the score (or why none) and its page."""

    text: str
    link: str
    note: str  # "override", "late", "flags": what the instructor may want to see


@dataclass(frozen=True)
class CourseRow:
    """One student across the term."""

    student_id: str
    name: str
    section: str
    cells: tuple[ScoreCell, ...]  # in the assignments' order
    total: str
    late_days_left: str


@dataclass(frozen=True)
class CourseView:
    name: str
    assignments: tuple[AssignmentLine, ...]
    rows: tuple[CourseRow, ...]
    max_total: str
    late_day_budget: bool


def write_course_page(
    name: str,
    outcomes: Mapping[str, Sequence[StudentOutcome]],
    out_root: Path,
    *,
    zone: tzinfo | None = None,
) -> Path:
    """Write ``out_root/index.html``; ``outcomes`` maps each assignment id to its outcomes
    (in roster order), assignments in the order the page lists them."""
    out_root.mkdir(parents=True, exist_ok=True)
    path = out_root / COURSE_PAGE
    view = course_view(name, outcomes, zone=zone)
    write_rendered(path, render("course.html.j2", view=view).encode("utf-8"))
    return path


def course_view(
    name: str, outcomes: Mapping[str, Sequence[StudentOutcome]], *, zone: tzinfo | None = None
) -> CourseView:
    """The course page's content (see the module docstring)."""
    columns = [list(o) for o in outcomes.values()]
    assignments = [c[0].assignment for c in columns if c]
    rows = []
    for index in range(len(columns[0]) if columns else 0):
        mine = [column[index] for column in columns]
        rows.append(_row(mine))
    return CourseView(
        name=printable(name),
        assignments=tuple(
            _assignment_line(a, c, zone) for a, c in zip(assignments, columns, strict=True)
        ),
        rows=tuple(rows),
        max_total=number_text(sum(a.max_points for a in assignments)),
        late_day_budget=any(o.late_days is not None for c in columns for o in c),
    )


def _assignment_line(
    assignment: Assignment, outcomes: Sequence[StudentOutcome], zone: tzinfo | None
) -> AssignmentLine:
    scores = [o.grade.score for o in outcomes if o.status == "graded" and o.grade]
    return AssignmentLine(
        assignment_id=printable(assignment.id),
        title=printable(assignment.title or assignment.id),
        deadline=moment_text(assignment.deadline, zone),
        max_points=number_text(assignment.max_points),
        graded=len(scores),
        not_graded=len(outcomes) - len(scores),
        mean=number_text(round(statistics.fmean(scores), 2)) if scores else "",
        link=quote(f"{assignment.id}/{DASHBOARD_FILE}"),
    )


def _row(outcomes: Sequence[StudentOutcome]) -> CourseRow:
    student = outcomes[0].student
    cells = tuple(_cell(o) for o in outcomes)
    scores = [o.grade.score for o in outcomes if o.status == "graded" and o.grade]
    budgets = [o.late_days for o in outcomes if o.late_days is not None]
    return CourseRow(
        student_id=printable(student.student_id),
        name=printable(student.name),
        section=printable(student.section),
        cells=cells,
        total=number_text(sum(scores)) if scores else "",
        late_days_left=str(min(b.left for b in budgets)) if budgets else "",
    )


def _cell(outcome: StudentOutcome) -> ScoreCell:
    graded = outcome.grade if outcome.status == "graded" else None
    text = number_text(graded.score) if graded else f"- ({printable(outcome.outcome)})"
    notes = [
        word
        for word, present in (
            ("override", outcome.override is not None and outcome.override.applies),
            ("late", outcome.lateness.total_seconds() > 0),
            ("flags", bool(outcome.flags)),
        )
        if present
    ]
    link = instructor_link(outcome.student.student_id)
    return ScoreCell(
        text, quote(f"{outcome.assignment.id}/") + link if link else "", ", ".join(notes)
    )
