"""Per-student feedback: ``feedback/<student_id>.md`` and ``.html``.

A pure function (``feedback_view``) lays out what a student may see; the templates only
render it. It reads a ``StudentView`` (``grader.reports.student_view``), already
scrubbed of hidden material: hidden tests reach the templates as "hidden test N" with
their points and status but never their name or message, so no template can leak them.
The same outcome always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path

from grader.commits import when_text
from grader.errors import ConfigError
from grader.records import Grade, LateDayUse, Outcome, TestScore
from grader.reports.excerpt import excerpt, number_text
from grader.reports.student_view import (
    HIDDEN_LABEL,
    HIDDEN_RULE_LABEL,
    StudentView,
    timeout_words,
)
from grader.reports.templating import PageViews, render_page, write_view
from grader.scoring.late import describe_lateness
from grader.scoring.points import is_placeholder

FEEDBACK_DIR = "feedback"
MESSAGE_CHARS = 1_000  # of one test's message
DETAILS_CHARS = 3_000  # of one test's traceback or output
MESSAGE_LINES = 60  # of one test's message or traceback
BUILD_LINES = 80  # compiler output: the first errors matter most
BUILD_CHARS = 8_000

OUTCOME_WORDS = {
    Outcome.OK: "Every test passed.",
    Outcome.FAIL: "Some tests failed: see which below.",
    Outcome.BUILD_ERROR: "Your code did not compile, so no test could run. The compiler said:",
    Outcome.RUNTIME_ERROR: "Your program crashed while running, so the tests could not finish.",
    Outcome.TIME_LIMIT: (
        "Your program ran past its time limit, so the tests did not finish"
        " (an endless loop is the usual cause)."
    ),
}
POINTED = ("test points", "report points")  # bases where each test has points to show
STATUS_WORDS = {
    "ok": "passed",
    "failure": "failed",
    "error": "error",
    "skipped": "skipped",
    "did not run": "did not run",
}


@dataclass(frozen=True)
class TestLine:
    """One row of the test table, as the student may see it."""

    __test__ = False  # not a pytest class, despite the name

    label: str
    status: str
    points: str
    message: str
    details: str


@dataclass(frozen=True)
class FeedbackView:
    """Everything the feedback templates show; nothing they must not."""

    student_id: str
    student_name: str
    assignment_title: str
    graded: bool
    score: str
    max_score: str
    outcome: str
    outcome_text: str
    reason: str
    deadline: str
    commit: str
    committed_at: str
    commit_reason: str
    lateness: str
    late_text: str
    raw_points: str
    penalty_points: str
    show_points: bool
    tests: tuple[TestLine, ...]
    passed: int
    tests_heading: str  # "Tests (3 of 8 passed)", or what is known when tests are unknown
    build_output: str
    override_text: str  # the instructor's change to the score, in words; "" when none
    late_days_text: str  # "you used 2 of your 5 late days"; "" without a budget


def write_feedback(
    outcomes: Iterable[StudentView],
    directory: Path,
    *,
    now: datetime | None = None,
    zone: tzinfo | None = None,
    pages: PageViews | None = None,
) -> list[Path]:
    """Write ``directory/feedback/<student_id>.md`` and ``.html`` for every student view.

    Moments are shown in ``zone`` (the course's time zone; None: UTC). A page ``pages``
    saw written from the same view is left as it is."""
    moment = now or datetime.now(UTC)
    folder = directory / FEEDBACK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for outcome in outcomes:
        stem = file_stem(outcome.student.student_id)
        view = feedback_view(outcome, now=moment, zone=zone)
        for suffix in (".md", ".html"):
            path = folder / f"{stem}{suffix}"
            page = partial(render_page, f"feedback{suffix}.j2", view)
            write_view(path, view, page, pages)
            written.append(path)
    return written


def feedback_view(
    outcome: StudentView, *, now: datetime, zone: tzinfo | None = None
) -> FeedbackView:
    """What one student may see about one assignment at ``now``, moments in ``zone``."""
    student, assignment = outcome.student, outcome.assignment
    grade = outcome.grade if outcome.status == "graded" else None
    reveal_after_due = now >= assignment.due_for(student.student_id)
    tests = _test_lines(grade, reveal_after_due) if grade else ()
    build = outcome.build_output if outcome.outcome == Outcome.BUILD_ERROR else ""
    late = outcome.lateness
    return FeedbackView(
        student_id=student.student_id,
        student_name=student.name or student.student_id,
        assignment_title=assignment.title or assignment.id,
        graded=grade is not None,
        score=number_text(grade.score) if grade else "",
        max_score=number_text(assignment.max_points),
        outcome=outcome.outcome,
        outcome_text=_outcome_text(outcome, tests),
        reason=outcome.reason,
        deadline=_deadline(outcome, zone),
        commit=outcome.commit or "",
        committed_at=moment_text(outcome.committed_at, zone) if outcome.committed_at else "",
        commit_reason=outcome.commit_reason or "",
        lateness=describe_lateness(late) if late.total_seconds() > 0 else "",
        late_text=_late_text(grade) if grade else "",
        raw_points=number_text(grade.raw_points) if grade else "",
        penalty_points=number_text(grade.penalty_points) if grade else "",
        show_points=bool(grade and grade.basis in POINTED),
        tests=tests,
        passed=sum(1 for t in tests if t.status == "passed"),
        tests_heading=_tests_heading(tests),
        build_output=excerpt(build, max_lines=BUILD_LINES, max_bytes=BUILD_CHARS),
        override_text=_override_text(outcome),
        late_days_text=late_days_text(outcome.late_days),
    )


def _test_lines(grade: Grade, reveal_after_due: bool) -> tuple[TestLine, ...]:
    """Every test as the student may see it: public ones first, hidden ones last."""
    shown: list[TestLine] = []
    secret: list[TestLine] = []
    unseen = 0  # numbered as student_view's labels: tests not visible by name, in order
    for test in grade.tests:
        rule = _is_rule(test)
        unseen += test.visibility != "visible" and not rule
        hidden = test.visibility == "hidden" or (
            test.visibility == "after_due_date" and not reveal_after_due
        )
        points = _points(test) if grade.basis in POINTED else ""
        status = _status(test)
        if hidden:
            label = HIDDEN_RULE_LABEL if rule else HIDDEN_LABEL.format(number=unseen)
            secret.append(TestLine(label, status, points, timeout_words(test.message), ""))
            continue
        if rule:
            shown.append(TestLine(f"{RULE_PREFIX}{test.name}", status, points, "", ""))
            continue
        failed = test.status in ("failure", "error")
        message = _excerpt(test.message, MESSAGE_CHARS) if test.status != "ok" else ""
        details = _excerpt(test.details, DETAILS_CHARS) if failed else ""
        if details.strip() == message.strip():
            details = ""
        shown.append(TestLine(test.name, status, points, message, details))
    return (*shown, *secret)


RULE_PREFIX = "every test matching "  # a glob rule that matched no known test


def _is_rule(test: TestScore) -> bool:
    """A glob rule standing for tests unknown here (its hidden kind arrives relabelled)."""
    return is_placeholder(test) or test.name == HIDDEN_RULE_LABEL


def _is_timeout(message: str) -> bool:
    """The harness's words for a test that hung ("timed out after N s")."""
    return bool(timeout_words(message))


def _status(test: TestScore) -> str:
    if test.status in ("failure", "error") and _is_timeout(test.message):
        return "timed out"
    return STATUS_WORDS[test.status]


def _tests_heading(tests: Sequence[TestLine]) -> str:
    """How many tests passed, when the tests are known; a glob that ran nothing is no test."""
    known = [
        t for t in tests if t.label != HIDDEN_RULE_LABEL and not t.label.startswith(RULE_PREFIX)
    ]
    passed = sum(1 for t in known if t.status == "passed")
    if len(known) == len(tests):
        return f"Tests ({passed} of {len(tests)} passed)"
    if not known:
        return "Tests (none ran)"
    return f"Tests ({passed} of {len(known)} listed passed; others did not run)"


def _outcome_text(outcome: StudentView, tests: Sequence[TestLine]) -> str:
    """The outcome in words; a timeout says which tests hung and for how long."""
    words = OUTCOME_WORDS.get(outcome.outcome, outcome.reason)
    if outcome.outcome == Outcome.TIME_LIMIT and outcome.reason:
        words = f"{words} What happened: {outcome.reason}."
    hung = [t for t in tests if t.status == "timed out"]
    if hung:
        listed = "; ".join(f"{t.label} {timeout_words(t.message)}" for t in hung)
        words = f"{words} Tests that ran past their time limit: {listed}."
    return words


def _points(test: TestScore) -> str:
    earned, possible = number_text(test.points_earned), number_text(test.points_possible)
    if _is_rule(test):
        return f"{earned} ({possible} per test)"
    return f"{earned} / {possible}"


def late_days_text(use: LateDayUse | None) -> str:
    """'This assignment used 1 late day: you used 2 of your 5 late days (3 left).'"""
    if use is None:
        return ""
    total = f"you used {use.used} of your {use.budget} late days ({use.left} left)"
    if not use.spent:
        return f"{total[:1].upper()}{total[1:]}."
    days = "day" if use.spent == 1 else "days"
    return f"This assignment used {use.spent} late {days}: {total}."


def _override_text(outcome: StudentView) -> str:
    override = outcome.override
    if override is None or not override.applies or outcome.grade is None:
        return ""
    tests = (
        f"the tests gave {number_text(override.current_score)}"
        if override.current_score is not None
        else "the tests gave no grade"
    )
    if override.kind == "score":
        text = f"your score was set to {number_text(outcome.grade.score)} ({tests})"
    else:
        text = f"your score was adjusted by {override.value:+g} ({tests})"
    return f"{text}: {override.reason}" if override.reason else text


def _late_text(grade: Grade) -> str:
    late = grade.late
    if late.lateness.total_seconds() <= 0:
        return ""
    sentence = late.reason[:1].upper() + late.reason[1:]
    if late.percent == 0:
        return f"{sentence}."
    penalty, raw = number_text(grade.penalty_points), number_text(grade.raw_points)
    return f"{sentence}, so {penalty} of your {raw} points were taken off."


def _deadline(outcome: StudentView, zone: tzinfo | None) -> str:
    assignment, student_id = outcome.assignment, outcome.student.student_id
    due = assignment.due_for(student_id)
    extension = assignment.extensions.get(student_id)
    if extension:
        return f"{moment_text(due, zone)} (with your extension of {describe_lateness(extension)})"
    return moment_text(due, zone)


def file_stem(student_id: str) -> str:
    """The student id as a file name; a roster id that could escape the folder is refused."""
    if not student_id or student_id in (".", "..") or any(c in student_id for c in "/\\\0"):
        raise ConfigError(f"student id {student_id!r} cannot be used as a file name")
    return student_id


def moment_text(moment: datetime, zone: tzinfo | None = None) -> str:
    """'2026-09-18 23:59 EDT' in ``zone`` (the course's time zone), else '... UTC'."""
    return when_text(moment, zone)


def _excerpt(text: str, max_bytes: int) -> str:
    """Student program output: escapes gone, controls visible, cut with a notice."""
    return excerpt(text, max_lines=MESSAGE_LINES, max_bytes=max_bytes)
