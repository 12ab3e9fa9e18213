"""The instructor's view of one student's result: ``instructor/<student_id>.md`` and ``.html``.

Where ``feedback/`` shows a student what they may see, this shows the instructor
everything: hidden test names and messages, grading notes, integrity flags, the
engine's status, the submission and archive, the build output and the end of the debug
log. It lives in its own folder, each page says it is not for students, and nothing
from ``feedback/`` links here. Every piece of program output goes through ``excerpt``
(escapes removed, controls visible, cut by lines and bytes with a notice) before a
template sees it, and the templates escape it again (HTML autoescape, Markdown
``md``/``fence``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from pathlib import Path

from grader.records import ScoreOverride, StudentOutcome, TestScore
from grader.reports.excerpt import excerpt, number_text, printable
from grader.reports.feedback import STATUS_WORDS, file_stem, late_days_text, moment_text
from grader.reports.templating import PageViews, render_page, write_view
from grader.scoring.late import describe_lateness
from grader.scoring.overrides import override_note

INSTRUCTOR_DIR = "instructor"
MESSAGE_LINES, MESSAGE_BYTES = 40, 4_000
DETAILS_LINES, DETAILS_BYTES = 120, 16_000
BUILD_LINES, BUILD_BYTES = 200, 32_000  # the first errors matter most
LOG_LINES, LOG_BYTES = 200, 32_000  # the end of a log says what went wrong last


@dataclass(frozen=True)
class InstructorTest:
    """One test in full, hidden or not."""

    __test__ = False  # not a pytest class, despite the name

    name: str
    visibility: str
    status: str
    points: str
    time: str
    message: str
    details: str


@dataclass(frozen=True)
class FlagLine:
    """One integrity flag: what kind, and what disagreed."""

    kind: str
    reason: str


@dataclass(frozen=True)
class InstructorView:
    """Everything known about one student's result, output already made printable."""

    student_id: str
    student_name: str
    email: str
    section: str
    github_username: str
    assignment_id: str
    assignment_title: str
    status: str
    outcome: str
    reason: str
    score: str
    max_score: str
    raw_points: str
    penalty_points: str
    late_reason: str
    override: str  # "score 90 (the tests gave 85), 2026-... : reason"; "" when none
    override_note: str  # what changed under the override; "" when nothing
    late_days: str  # the late-day budget after this assignment; "" without one
    basis: str
    deadline: str
    commit: str
    committed_at: str
    commit_reason: str
    lateness: str
    submission_id: str
    engine_status: str
    attempts: int
    archive_sha256: str
    notes: tuple[str, ...]
    flags: tuple[FlagLine, ...]
    tests: tuple[InstructorTest, ...]
    build_output: str
    debug_log: str


def write_instructor_views(
    outcomes: Iterable[StudentOutcome],
    directory: Path,
    *,
    zone: tzinfo | None = None,
    pages: PageViews | None = None,
) -> list[Path]:
    """Write ``directory/instructor/<student_id>.md`` and ``.html`` for every outcome
    (moments in ``zone``, the course's time zone; None: UTC); a page ``pages`` saw
    written from the same view is left as it is."""
    folder = directory / INSTRUCTOR_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for outcome in outcomes:
        stem = file_stem(outcome.student.student_id)
        view = instructor_view(outcome, zone=zone)
        for suffix in (".md", ".html"):
            path = folder / f"{stem}{suffix}"
            page = partial(render_page, f"instructor{suffix}.j2", view)
            write_view(path, view, page, pages)
            written.append(path)
    return written


def instructor_view(outcome: StudentOutcome, *, zone: tzinfo | None = None) -> InstructorView:
    """Everything about one outcome, for the instructor, moments in ``zone``."""
    student, assignment = outcome.student, outcome.assignment
    grade = outcome.grade if outcome.status == "graded" else None
    extension = assignment.extensions.get(student.student_id)
    deadline = moment_text(assignment.due_for(student.student_id), zone)
    if extension:
        deadline += f" (extension of {describe_lateness(extension)})"
    late = outcome.lateness
    return InstructorView(
        student_id=printable(student.student_id),
        student_name=printable(student.name),
        email=printable(student.email),
        section=printable(student.section),
        github_username=printable(student.github_username),
        assignment_id=assignment.id,
        assignment_title=printable(assignment.title or assignment.id),
        status=outcome.status,
        outcome=printable(outcome.outcome),
        reason=_short(outcome.reason),
        score=number_text(grade.score) if grade else "",
        max_score=number_text(assignment.max_points),
        raw_points=number_text(grade.raw_points) if grade else "",
        penalty_points=number_text(grade.penalty_points) if grade else "",
        late_reason=printable(grade.late.reason) if grade else "",
        override=_override(outcome.override, zone),
        override_note=override_note(outcome.override) if outcome.override else "",
        late_days=late_days_text(outcome.late_days),
        basis=grade.basis if grade else "",
        deadline=deadline,
        commit=printable(outcome.commit or ""),
        committed_at=moment_text(outcome.committed_at, zone) if outcome.committed_at else "",
        commit_reason=_short(outcome.commit_reason or ""),
        lateness=describe_lateness(late) if late.total_seconds() > 0 else "",
        submission_id="" if outcome.submission_id is None else str(outcome.submission_id),
        engine_status=printable(outcome.engine_status or ""),
        attempts=outcome.attempts,
        archive_sha256=printable(outcome.archive_sha256 or ""),
        notes=tuple(_short(note) for note in grade.warnings) if grade else (),
        flags=tuple(FlagLine(printable(f.kind), _short(f.reason)) for f in outcome.flags),
        tests=tuple(_test(t) for t in grade.tests) if grade else (),
        build_output=excerpt(outcome.build_output, max_lines=BUILD_LINES, max_bytes=BUILD_BYTES),
        debug_log=excerpt(outcome.debug_log, max_lines=LOG_LINES, max_bytes=LOG_BYTES, keep="tail"),
    )


def _override(override: ScoreOverride | None, zone: tzinfo | None) -> str:
    if override is None:
        return ""
    tests = "not graded" if override.current_score is None else f"{override.current_score:g}"
    shown = "students see the reason" if override.show_reason else "reason not shown to students"
    when = moment_text(override.created_at, zone)
    return _short(
        f"{override.describe()} (the tests gave {tests}), set {when}: {override.reason} ({shown})"
    )


def _test(test: TestScore) -> InstructorTest:
    details = excerpt(test.details, max_lines=DETAILS_LINES, max_bytes=DETAILS_BYTES)
    message = excerpt(test.message, max_lines=MESSAGE_LINES, max_bytes=MESSAGE_BYTES)
    return InstructorTest(
        name=printable(test.name),
        visibility=test.visibility,
        status=STATUS_WORDS[test.status],
        points=f"{number_text(test.points_earned)} / {number_text(test.points_possible)}",
        time=f"{test.time:.2f} s" if test.time else "",
        message=message,
        details="" if details.strip() == message.strip() else details,
    )


def _short(text: str) -> str:
    """A one-paragraph field (reason, note): printable and capped like a message."""
    return excerpt(text, max_lines=MESSAGE_LINES, max_bytes=MESSAGE_BYTES)
