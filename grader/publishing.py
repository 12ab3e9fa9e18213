"""The `publish` job: stored grades and feedback delivered to Canvas, Moodle or students' repos.

The CLI builds a ``PublishOptions`` and calls ``publish``; nothing here prints or exits.
What students receive comes from the stored outcomes through ``student_view`` (the one
door: hidden material scrubbed), exactly as `grader report` renders the feedback pages.
The course lock is held for the whole run, so two publishes never race each other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from grader.config import Assignment, CanvasSettings, Course, load_course
from grader.errors import ConfigError
from grader.lock import course_lock
from grader.outputs import assignment_hidden_material, stored_outcomes
from grader.preflight import default_out_root
from grader.publish.bulk import PublishJob
from grader.publish.canvas import CanvasJob, CanvasPublisher
from grader.publish.canvas_api import CanvasClient, canvas_settings
from grader.publish.git import GitJob, GitPublisher
from grader.publish.ledger import Ledger
from grader.publish.lms_http import Sleep
from grader.publish.moodle import MoodleJob, MoodlePublisher
from grader.publish.moodle_api import MoodleClient, moodle_settings
from grader.publish.plan import feedback_page, feedback_text, grade_value
from grader.publish.results import PublishLine, PublishReport
from grader.reports.lms.moodle import IDENTITIES
from grader.reports.lms.sheet import lms_setting, setting_key
from grader.reports.preview import PREVIEW_DIR
from grader.reports.student_view import StudentView, student_views
from grader.roster import Student, id_problem, load_roster
from grader.state import STATE_FILE, State, open_state

TARGETS = ("canvas", "moodle", "git")


@dataclass(frozen=True)
class PublishOptions:
    course_dir: Path
    assignment: str
    to: str
    students: tuple[str, ...] = ()
    dry_run: bool = False
    feedback_only: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


Sent = tuple[list[PublishLine], int]
"""Every student's line, and how many rows an interrupted run left were settled."""


@dataclass(frozen=True)
class Destination:
    """Where one publish goes: its report title, the ledger's key, and how to send there."""

    label: str  # "Canvas course 7, assignment 5" (never a token)
    target: str  # the ledger's key for this place and assignment
    send: Callable[[PublishJob, Ledger, Sleep], Sent]
    attach_pages: bool = False  # each student's feedback page goes with the comment


def publish(
    options: PublishOptions,
    *,
    environ: Mapping[str, str] = os.environ,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], datetime] = _now,
) -> PublishReport:
    """Publish one assignment's grades and feedback to ``options.to``.

    A dry run settles what an interrupted run left and plans as a real run would, inside
    a rehearsal of the ledger that is rolled back: it sends and records nothing."""
    course = load_course(options.course_dir)
    assignment = course.assignment(options.assignment)
    if options.to not in TARGETS:
        raise ConfigError(f"unknown target {options.to!r} (choose one of: {', '.join(TARGETS)})")
    destination = DESTINATIONS[options.to](options, course, assignment, environ)
    roster = _chosen(load_roster(course.roster), options.students)
    _check_state(course, assignment)
    with course_lock(course.state_dir), open_state(course.state_dir) as state:
        views = _views(course, assignment, state, roster)
        now = clock()
        job = PublishJob(
            target=destination.target,
            assignment=assignment.id,
            views=tuple(views),
            feedback=_feedback(course, assignment, views, now, feedback_only=options.feedback_only),
            dry_run=options.dry_run,
            feedback_only=options.feedback_only,
            pages=_pages(views, now) if destination.attach_pages else {},
        )
        ledger = Ledger(state, clock=clock)
        with ledger.rehearsal() if options.dry_run else nullcontext():
            lines, settled = destination.send(job, ledger, sleep)
    return PublishReport(destination.label, tuple(lines), dry_run=options.dry_run, settled=settled)


def _git(
    options: PublishOptions, course: Course, assignment: Assignment, environ: Mapping[str, str]
) -> Destination:
    branch = course.lms.git.branch

    def send(job: PublishJob, ledger: Ledger, sleep: Sleep) -> Sent:
        git_job = GitJob.extending(
            job,
            course_root=course.root,
            state_dir=course.state_dir,
            repo_template=assignment.repo,
            branch=branch,
        )
        return GitPublisher(git_job, ledger, environ=environ).run()

    label = f"FEEDBACK.md on branch {branch!r} of each student's repository"
    return Destination(label, f"git {branch}", send)


def _canvas(
    options: PublishOptions, course: Course, assignment: Assignment, environ: Mapping[str, str]
) -> Destination:
    settings = _canvas_settings(course)
    canvas_assignment = _canvas_assignment_id(assignment)
    http = canvas_settings(settings.url, _token(environ, settings.token_env))

    async def run(job: PublishJob, ledger: Ledger, sleep: Sleep) -> Sent:
        canvas_job = CanvasJob.extending(job, settings=settings, assignment_id=canvas_assignment)
        async with CanvasClient(http, sleep=sleep) as client:
            return await CanvasPublisher(canvas_job, client, ledger).run()

    return Destination(
        f"Canvas course {settings.course_id}, assignment {canvas_assignment}",
        f"canvas {settings.url}/courses/{settings.course_id}/assignments/{canvas_assignment}",
        lambda job, ledger, sleep: asyncio.run(run(job, ledger, sleep)),
        attach_pages=settings.attach_feedback,
    )


def _moodle(
    options: PublishOptions, course: Course, assignment: Assignment, environ: Mapping[str, str]
) -> Destination:
    settings = course.lms.moodle
    if settings is None:
        raise ConfigError(
            "no [lms.moodle] table: add the site's url (see config.example.toml)",
            file=str(course.root / "course.toml"),
        )
    if options.feedback_only:
        raise ConfigError(
            "Moodle keeps the feedback comment with the grade, so --feedback-only cannot "
            "send one alone: use --to git (or canvas) for feedback before the deadline"
        )
    moodle_assignment = _number_setting(
        assignment, "moodle_assignment_id", "the assignment's id in Moodle (mod_assign instance)"
    )
    identity = lms_setting(assignment, "moodle_identity") or "email"
    if identity not in IDENTITIES:
        raise ConfigError(
            f"{identity!r}: choose email or idnumber",
            where=setting_key(assignment, "moodle_identity"),
        )
    http = moodle_settings(
        settings.url, _token(environ, settings.token_env, "a Moodle web service token")
    )

    async def run(job: PublishJob, ledger: Ledger, sleep: Sleep) -> Sent:
        moodle_job = MoodleJob.extending(job, assignment_id=moodle_assignment, identity=identity)
        async with MoodleClient(http, sleep=sleep) as client:
            return await MoodlePublisher(moodle_job, client, ledger).run()

    return Destination(
        f"Moodle assignment {moodle_assignment}",
        f"moodle {settings.url}/mod/assign/{moodle_assignment}",
        lambda job, ledger, sleep: asyncio.run(run(job, ledger, sleep)),
        attach_pages=settings.attach_feedback,
    )


DESTINATIONS: Mapping[
    str, Callable[[PublishOptions, Course, Assignment, Mapping[str, str]], Destination]
] = {"canvas": _canvas, "moodle": _moodle, "git": _git}


def _number_setting(assignment: Assignment, key: str, what: str) -> str:
    value = lms_setting(assignment, key)
    if value is None or not value.isdigit():
        raise ConfigError(f"set it to {what} to publish there", where=setting_key(assignment, key))
    return value


def _feedback(
    course: Course,
    assignment: Assignment,
    views: Sequence[StudentView],
    now: datetime,
    *,
    feedback_only: bool,
) -> dict[str, str]:
    """What each student's comment says; a student with nothing to send has no entry.

    A graded student gets the feedback; with ``feedback_only``, a student not graded yet
    gets the preview `grader grade --preview` wrote (``out/<a>/preview/<id>.md``), if any.
    """
    previews = default_out_root(course) / assignment.id / PREVIEW_DIR
    texts = {}
    for view in views:
        student_id = view.student.student_id
        if grade_value(view) is not None:
            texts[student_id] = feedback_text(view, now=now)
        elif feedback_only and id_problem(student_id) is None:
            path = previews / f"{student_id}.md"
            if path.is_file():
                texts[student_id] = path.read_text(encoding="utf-8")
    return texts


def _pages(views: Sequence[StudentView], now: datetime) -> dict[str, str]:
    """Each graded student's feedback page (a preview has none: it is Markdown only)."""
    return {
        view.student.student_id: feedback_page(view, now=now)
        for view in views
        if grade_value(view) is not None
    }


def _check_state(course: Course, assignment: Assignment) -> None:
    state_file = course.state_dir / STATE_FILE
    if not state_file.is_file():
        raise ConfigError(
            f"nothing to publish for {assignment.id}: no grades are stored in {state_file} "
            "(run `grader grade` first)"
        )


def _views(
    course: Course, assignment: Assignment, state: State, roster: Sequence[Student]
) -> list[StudentView]:
    outcomes = stored_outcomes(state, assignment, roster, course=course)  # late days, overrides
    # identities come from the roster as it is now: a canvas_id added after grading counts
    outcomes = [replace(o, student=s) for o, s in zip(outcomes, roster, strict=True)]
    return student_views(outcomes, assignment_hidden_material(course, assignment, outcomes))


def _canvas_settings(course: Course) -> CanvasSettings:
    if course.lms.canvas is None:
        raise ConfigError(
            "no [lms.canvas] table: add url and course_id (see config.example.toml)",
            file=str(course.root / "course.toml"),
        )
    return course.lms.canvas


def _canvas_assignment_id(assignment: Assignment) -> str:
    return _number_setting(
        assignment,
        "canvas_assignment_id",
        "the Canvas assignment's number (the one after /assignments/ in its address)",
    )


def _token(environ: Mapping[str, str], name: str, what: str = "a Canvas access token") -> str:
    token = environ.get(name, "").strip()
    if not token:
        raise ConfigError(f"set {name} to {what} (it is read from there only)")
    return token


def _chosen(roster: Sequence[Student], students: Sequence[str]) -> list[Student]:
    if not students:
        return [s for s in roster if s.problem is None]
    known = {s.student_id: s for s in roster}
    missing = [s for s in students if s not in known]
    if missing:
        raise ConfigError(f"not in the roster: {', '.join(missing)}")
    return [known[s] for s in dict.fromkeys(students)]
