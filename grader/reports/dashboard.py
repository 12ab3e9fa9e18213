"""The instructor's ``dashboard.html`` for one assignment.

A pure function (``dashboard_view``) counts and summarises the outcomes; the template
only lays them out: counts by status and outcome, the score distribution as an inline
SVG bar chart (no script, nothing fetched), pass rates per test with hidden test names
shown (the page is for the instructor, never for students), the students whose
integrity flags say they need a look (with links to their instructor pages), the
students not graded with the reason, late students with what lateness cost, and the
grading notes. No clock
is read, so the same outcomes always give the same bytes.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from pathlib import Path
from urllib.parse import quote

from grader.config import Assignment
from grader.records import Grade, ScoredStatus, StudentOutcome, TestScore
from grader.reports.excerpt import number_text, printable
from grader.reports.feedback import STATUS_WORDS, moment_text
from grader.reports.instructor import INSTRUCTOR_DIR
from grader.reports.templating import render, write_rendered
from grader.roster import id_problem
from grader.scoring.late import describe_lateness
from grader.scoring.overrides import override_note
from grader.scoring.points import is_placeholder
from grader.state import StoredSimilarPair

DASHBOARD_FILE = "dashboard.html"
SIMILARITY_PAGE = "similarity.html"  # grader similarity's page, beside the dashboard
BINS = 10  # score ranges of a tenth of the maximum each
CHART_WIDTH = 600
CHART_HEIGHT = 160  # of the tallest bar; labels add room above and below
TEST_STATUSES: tuple[ScoredStatus, ...] = ("ok", "failure", "error", "skipped", "did not run")


@dataclass(frozen=True)
class Count:
    """One line of a count table: a label, how many, and the share of all students."""

    label: str
    count: int
    percent: str


@dataclass(frozen=True)
class ScoreBin:
    """One bar of the score distribution, with its place in the SVG chart."""

    label: str
    count: int
    x: int
    y: int
    height: int


@dataclass(frozen=True)
class TestRate:
    """How one test fared across the graded students."""

    __test__ = False  # not a pytest class, despite the name

    name: str
    visibility: str
    points: str
    counts: tuple[int, ...]  # in TEST_STATUSES order
    total: int
    passed_percent: int


@dataclass(frozen=True)
class StudentLine:
    """A student named in a list: not graded, late, or with a grading note."""

    student_id: str
    name: str
    what: str
    detail: str


@dataclass(frozen=True)
class StudentRow:
    """One row of the per-student table: where each student stands, linked to their page."""

    student_id: str
    name: str
    section: str
    link: str  # the instructor page, relative to the dashboard; "" when none can exist
    score: str
    outcome: str
    late: str
    late_days_left: str  # "" without a late-day budget
    override: str
    flags: int


@dataclass(frozen=True)
class FlaggedStudent:
    """A student whose integrity flags need a look, and where their instructor page is."""

    student_id: str
    name: str
    link: str  # relative to the dashboard; "" when the id cannot be a file name
    flags: tuple[str, ...]  # "kind: reason"


@dataclass(frozen=True)
class SimilarPair:
    """Two students `grader similarity` found alike (and whether they changed since)."""

    left: str
    left_link: str
    right: str
    right_link: str
    similarity: str
    note: str


@dataclass(frozen=True)
class DashboardView:
    """Everything the dashboard shows."""

    assignment_id: str
    title: str
    deadline: str
    max_points: str
    students: int
    statuses: tuple[Count, ...]
    outcomes: tuple[Count, ...]
    summary: tuple[tuple[str, str], ...]  # (label, value): mean, median, lowest, highest
    bins: tuple[ScoreBin, ...]
    bin_width: int
    chart_height: int
    tests: tuple[TestRate, ...]
    test_statuses: tuple[str, ...]
    needs_look: tuple[FlaggedStudent, ...]
    similar: tuple[SimilarPair, ...]
    similarity_threshold: str
    similarity_page: str
    rows: tuple[StudentRow, ...]
    late_day_budget: bool
    not_graded: tuple[StudentLine, ...]
    late: tuple[StudentLine, ...]
    notes: tuple[StudentLine, ...]


def write_dashboard(
    outcomes: Sequence[StudentOutcome],
    assignment: Assignment,
    directory: Path,
    *,
    zone: tzinfo | None = None,
    similar: Sequence[StoredSimilarPair] = (),
) -> Path:
    """Write ``directory/dashboard.html`` and return its path (moments in ``zone``).

    ``similar``: the pairs `grader similarity` stored; those at or above the
    assignment's threshold are listed."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DASHBOARD_FILE
    view = dashboard_view(outcomes, assignment, zone=zone, similar=similar)
    if (directory / SIMILARITY_PAGE).is_file():
        view = replace(view, similarity_page=SIMILARITY_PAGE)
    write_rendered(path, render("dashboard.html.j2", view=view).encode("utf-8"))
    return path


def dashboard_view(
    outcomes: Sequence[StudentOutcome],
    assignment: Assignment,
    *,
    zone: tzinfo | None = None,
    similar: Sequence[StoredSimilarPair] = (),
) -> DashboardView:
    """Count and summarise the outcomes of one assignment (roster order kept in lists)."""
    grades = [g for o in outcomes if (g := _grade(o)) is not None]
    bins = score_bins([g.score for g in grades], assignment.max_points)
    return DashboardView(
        assignment_id=assignment.id,
        title=assignment.title or assignment.id,
        deadline=moment_text(assignment.deadline, zone),
        max_points=number_text(assignment.max_points),
        students=len(outcomes),
        statuses=_counts([o.status for o in outcomes], len(outcomes)),
        outcomes=_counts([printable(o.outcome or o.status) for o in outcomes], len(outcomes)),
        summary=_summary([g.score for g in grades]),
        bins=bins,
        bin_width=CHART_WIDTH // BINS,
        chart_height=CHART_HEIGHT,
        tests=test_rates(grades),
        test_statuses=tuple(STATUS_WORDS[s] for s in TEST_STATUSES),
        needs_look=tuple(_flagged(o) for o in outcomes if o.flags),
        similar=similar_pairs(similar, outcomes, assignment.similarity_threshold),
        similarity_threshold=f"{100 * assignment.similarity_threshold:.0f}%",
        similarity_page="",
        rows=tuple(_row(o) for o in outcomes),
        late_day_budget=any(o.late_days is not None for o in outcomes),
        not_graded=tuple(_line(o, o.outcome, o.reason) for o in outcomes if o.status != "graded"),
        late=tuple(_late_line(o) for o in outcomes if o.lateness.total_seconds() > 0),
        notes=tuple(
            _line(o, "note", note)
            for o in outcomes
            if (g := _grade(o)) is not None
            for note in g.warnings
        )
        + tuple(_override_line(o) for o in outcomes if o.override is not None),
    )


def score_bins(scores: Sequence[float], max_points: float) -> tuple[ScoreBin, ...]:
    """Ten equal score ranges (the last one includes the maximum) as chart bars."""
    width = max_points / BINS if max_points > 0 else 0.0
    counts = [0] * BINS
    for score in scores:
        index = BINS - 1 if width == 0 else min(BINS - 1, int(score // width))
        counts[max(0, index)] += 1
    tallest = max(counts) or 1
    bar = CHART_WIDTH // BINS
    result = []
    for index, count in enumerate(counts):
        low, high = number_text(index * width), number_text((index + 1) * width)
        height = round(CHART_HEIGHT * count / tallest)
        label = f"{low}\u2013{high}"
        result.append(ScoreBin(label, count, index * bar, CHART_HEIGHT - height + 20, height))
    return tuple(result)


def test_rates(grades: Sequence[Grade]) -> tuple[TestRate, ...]:
    """Per test (in the order tests first appear): how many passed, failed, did not run.

    One definition for every assignment: a test's rate is over every graded student, and
    a graded student whose grade does not list the test (a build error, a timeout, a
    report that lacks it) counts as "did not run". A glob rule that matched no known test
    (``is_placeholder``) is no test and has no rate.
    """
    by_name: dict[str, list[TestScore]] = {}
    for grade in grades:
        for test in grade.tests:
            if not is_placeholder(test):
                by_name.setdefault(test.name, []).append(test)
    rates = []
    for name, runs in by_name.items():
        counts = Counter(t.status for t in runs)
        counts["did not run"] += len(grades) - len(runs)
        total = len(grades)
        rates.append(
            TestRate(
                name=printable(name),
                visibility=runs[0].visibility,
                points=number_text(runs[0].points_possible),
                counts=tuple(counts[s] for s in TEST_STATUSES),
                total=total,
                passed_percent=round(100 * counts["ok"] / total),
            )
        )
    return tuple(rates)


def _grade(outcome: StudentOutcome) -> Grade | None:
    return outcome.grade if outcome.status == "graded" else None


def _counts(labels: Sequence[str], total: int) -> tuple[Count, ...]:
    counted = Counter(labels)
    ordered = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Count(label, n, f"{round(100 * n / total)}%") for label, n in ordered)


def _summary(scores: Sequence[float]) -> tuple[tuple[str, str], ...]:
    if not scores:
        return ()
    return (
        ("graded", str(len(scores))),
        ("mean", number_text(round(statistics.fmean(scores), 2))),
        ("median", number_text(statistics.median(scores))),
        ("lowest", number_text(min(scores))),
        ("highest", number_text(max(scores))),
    )


def _late_line(outcome: StudentOutcome) -> StudentLine:
    late = describe_lateness(outcome.lateness)
    extension = outcome.assignment.extensions.get(outcome.student.student_id)
    if extension:
        late += f" (after an extension of {describe_lateness(extension)})"
    grade = _grade(outcome)
    if grade is None:
        cost = f"not graded: {outcome.outcome}"
    elif grade.penalty_points > 0:
        cost = f"{grade.late.reason}: {number_text(grade.penalty_points)} points"
    else:
        cost = grade.late.reason
    return _line(outcome, late, cost)


def _override_line(outcome: StudentOutcome) -> StudentLine:
    override = outcome.override
    assert override is not None  # only called for overridden outcomes
    detail = f"override, {override.describe()}: {override.reason}"
    note = override_note(override)
    return _line(outcome, "override", f"{detail} ({note})" if note else detail)


def _row(outcome: StudentOutcome) -> StudentRow:
    student, grade = outcome.student, _grade(outcome)
    override = outcome.override
    return StudentRow(
        student_id=printable(student.student_id),
        name=printable(student.name),
        section=printable(student.section),
        link=instructor_link(student.student_id),
        score=number_text(grade.score) if grade else "",
        outcome=printable(outcome.outcome or outcome.status),
        late=describe_lateness(outcome.lateness) if outcome.lateness.total_seconds() > 0 else "",
        late_days_left=str(outcome.late_days.left) if outcome.late_days else "",
        override=override.describe() if override and override.applies else "",
        flags=len(outcome.flags),
    )


def similar_pairs(
    stored: Sequence[StoredSimilarPair], outcomes: Sequence[StudentOutcome], threshold: float
) -> tuple[SimilarPair, ...]:
    """The stored pairs at or above ``threshold`` (or identical), saying which changed since."""
    commits = {o.student.student_id: o.commit for o in outcomes}
    lines = []
    for pair in stored:
        if not pair.identical and pair.similarity < threshold:
            continue
        moved = [
            s
            for s, commit in ((pair.student_a, pair.commit_a), (pair.student_b, pair.commit_b))
            if commits.get(s) != commit
        ]
        note = "byte-identical workspaces" if pair.identical else ""
        if moved:
            changed = f"graded commit changed since ({', '.join(moved)}): run grader similarity"
            note = f"{note}; {changed}" if note else changed
        lines.append(
            SimilarPair(
                printable(pair.student_a),
                instructor_link(pair.student_a),
                printable(pair.student_b),
                instructor_link(pair.student_b),
                f"{100 * pair.similarity:.1f}%",
                printable(note),
            )
        )
    return tuple(lines)


def instructor_link(student_id: str) -> str:
    """The instructor page of a student, relative to the assignment's folder ("" if none)."""
    return "" if id_problem(student_id) else quote(f"{INSTRUCTOR_DIR}/{student_id}.html")


def _flagged(outcome: StudentOutcome) -> FlaggedStudent:
    student = outcome.student
    return FlaggedStudent(
        printable(student.student_id),
        printable(student.name),
        instructor_link(student.student_id),
        tuple(printable(f"{f.kind}: {f.reason}") for f in outcome.flags),
    )


def _line(outcome: StudentOutcome, what: str, detail: str) -> StudentLine:
    """A student line with every text made printable (reasons quote program output)."""
    student = outcome.student
    return StudentLine(
        printable(student.student_id), printable(student.name), printable(what), printable(detail)
    )
