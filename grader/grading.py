"""The `grade` and `report` jobs: lock, state, log file, pipeline, outputs.

The CLI builds a ``GradeOptions`` and calls one function here; nothing in this module
prints or exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from grader.api.redact import TokenFilter
from grader.config import Course, load_course
from grader.connect import EngineChoice, choose_engine
from grader.errors import (
    EXIT_NOT_GRADED,
    EXIT_OK,
    ConfigError,
    GraderError,
    RunInterruptedError,
)
from grader.lock import course_lock
from grader.pipeline import GradeRequest, Pipeline, Progress, RunSummary, SilentProgress
from grader.preflight import (
    check_extensions,
    check_projects,
    check_roster,
    default_out_root,
    prepare_out_root,
)
from grader.records import StudentOutcome
from grader.roster import load_roster
from grader.state import open_state

if TYPE_CHECKING:
    from grader.outputs import AssignmentOutputs, StudentPages

# The outputs (grader.outputs: jinja2 and every report) are imported where the first
# result comes in, not with the command: its first submission goes out 0.05-0.1 s sooner.

log = logging.getLogger("grader")

INTERRUPT_GRACE = 20.0  # seconds running submissions get to finish after Ctrl-C


@dataclass(frozen=True)
class GradeOptions:
    course_dir: Path
    assignments: tuple[str, ...] = ()
    students: tuple[str, ...] = ()
    force: bool = False
    engine_url: str | None = None
    concurrency: int | None = None
    out_dir: Path | None = None
    preview: bool = False  # latest commits, deadline ignored; writes preview/ only


@dataclass(frozen=True)
class GradeReport:
    course: Course
    engine: EngineChoice
    summary: RunSummary
    outputs: tuple[AssignmentOutputs, ...]
    log_file: Path

    @property
    def exit_code(self) -> int:
        """1 when some student is not graded (each is reported), else 0."""
        return EXIT_NOT_GRADED if self.summary.not_graded else EXIT_OK


def grade(options: GradeOptions, *, progress: Progress | None = None) -> GradeReport:
    """Grade the chosen assignments of a course and write their outputs."""
    course = load_course(options.course_dir)
    assignment_ids = _assignment_ids(course, options.assignments)
    roster = load_roster(course.roster)
    check_roster(course, roster, options.students)
    check_extensions(course, assignment_ids, roster)
    engine = choose_engine(course, url=options.engine_url)
    check_projects(course, engine, assignment_ids)
    out_root = options.out_dir or default_out_root(course)
    with (
        course_lock(course.state_dir),
        open_state(course.state_dir) as state,
        _run_log(course, engine) as log_file,
    ):
        prepare_out_root(out_root)
        request = GradeRequest(
            course=course,
            roster=roster,
            assignments=assignment_ids,
            students=options.students,
            force=options.force,
            concurrency=options.concurrency,
            preview=options.preview,
        )
        log.info("grading %s on engine %s", ", ".join(assignment_ids), engine.label)
        pages_root = None if options.preview else out_root
        ahead = _OutputsAhead(progress or SilentProgress(), course, pages_root)
        pipeline = Pipeline(request, state, engine, progress=ahead)
        if options.preview:
            summary = asyncio.run(_run_interruptible(pipeline))
            ahead.join()
            outputs = _previews(course, assignment_ids, summary, out_root)
        else:
            try:
                summary = asyncio.run(_run_interruptible(pipeline))
            finally:  # even after Ctrl-C, what finished is written out
                ahead.join()
                from grader.outputs import write_assignment_outputs, write_course_outputs

                outputs = tuple(
                    write_assignment_outputs(
                        course,
                        course.assignment(a),
                        state,
                        roster,
                        out_root,
                        pages=ahead.pages.pages if ahead.pages else None,
                    )
                    for a in assignment_ids
                )
                write_course_outputs(course, state, roster, out_root)
        if summary.interrupted:
            raise RunInterruptedError(
                f"interrupted: {summary.interrupted} submission(s) left for the next run"
            )
        for outcome in summary.outcomes:
            for flag in outcome.flags:  # the engine's warnings and the like: for the log too
                log.warning(
                    "%s/%s flagged: %s: %s",
                    outcome.assignment.id,
                    outcome.student.student_id,
                    flag.kind,
                    flag.reason,
                )
        for outcome in summary.not_graded:
            log.warning(
                "%s/%s not graded: %s: %s",
                outcome.assignment.id,
                outcome.student.student_id,
                outcome.outcome,
                outcome.reason,
            )
        log.info(
            "run %d done: %d submissions created, %d reused",
            summary.run_id,
            summary.submissions_created,
            summary.reused,
        )
    return GradeReport(course, engine, summary, outputs, log_file)


class _OutputsAhead:
    """Passes every report on, and does what it can of the outputs while the engine
    still runs the other students: the first finished student starts compiling the
    output templates in a thread, and each one's pages are written as its result comes
    in (``StudentPages``). What is left after the last result is the pages whose view
    changed, and the assignment-wide files (about 0.1-0.3 s less of the run's tail).
    """

    def __init__(self, inner: Progress, course: Course, out_root: Path | None) -> None:
        self.inner = inner
        self.course = course
        self.out_root = out_root  # None: no pages ahead (a preview)
        self.pages: StudentPages | None = None
        self.thread: threading.Thread | None = None

    def start(self, total: int) -> None:
        self.inner.start(total)

    def step(self, assignment: str, student_id: str, stage: str) -> None:
        self.inner.step(assignment, student_id, stage)

    def finished(self, outcome: StudentOutcome) -> None:
        if self.thread is None:
            from grader.outputs import StudentPages
            from grader.reports.templating import environment

            # made here: the warm-up thread and this one then share it (missing templates
            # are reported when the outputs are written, after every student is graded)
            with contextlib.suppress(GraderError):
                environment()
            self.thread = threading.Thread(target=_warm_up, name="outputs-warm-up", daemon=True)
            self.thread.start()
            if self.out_root is not None:
                self.pages = StudentPages(self.course, self.out_root)
        self.inner.finished(outcome)
        if self.pages is not None:
            try:
                self.pages.write(outcome)
            except (GraderError, OSError, _template_error()) as exc:
                # the outputs written at the end meet the same fault and report it there
                log.debug("writing pages ahead stopped: %s", exc)
                self.pages = None

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _template_error() -> type[Exception]:
    import jinja2

    return jinja2.TemplateError


def _warm_up() -> None:
    from grader.reports.gradebook import load_pandas
    from grader.reports.templating import compile_templates

    load_pandas()  # for the gradebook; not imported with grader, to start sooner
    # A template that cannot be read fails again, and is reported, when outputs are written.
    with contextlib.suppress(GraderError, _template_error()):
        compile_templates()


def _previews(
    course: Course, assignment_ids: Sequence[str], summary: RunSummary, out_root: Path
) -> tuple[AssignmentOutputs, ...]:
    from grader.outputs import write_preview_outputs

    now = datetime.now(UTC)
    return tuple(
        write_preview_outputs(
            course,
            course.assignment(a),
            [o for o in summary.outcomes if o.assignment.id == a],
            out_root,
            now=now,
        )
        for a in assignment_ids
    )


async def _run_interruptible(pipeline: Pipeline) -> RunSummary:
    """First Ctrl-C: submit nothing new, let running ones finish for a while. Second: stop."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def interrupt() -> None:
        if main is None:
            return
        if pipeline.stopping.is_set():
            main.cancel()
            return
        log.warning("interrupted: no new submissions; Ctrl-C again to stop at once")
        pipeline.stopping.set()
        loop.call_later(INTERRUPT_GRACE, main.cancel)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread
        loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        return await pipeline.run()
    except asyncio.CancelledError:
        raise RunInterruptedError("interrupted; run `grader grade` again to finish") from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def report(
    course_dir: Path, *, assignments: Sequence[str] = (), out_dir: Path | None = None
) -> tuple[AssignmentOutputs, ...]:
    """Re-render every output from stored results; runs nothing."""
    from grader.outputs import write_assignment_outputs, write_course_outputs

    course = load_course(course_dir)
    roster = load_roster(course.roster)
    out_root = out_dir or default_out_root(course)
    with open_state(course.state_dir) as state:
        outputs = tuple(
            write_assignment_outputs(course, course.assignment(a), state, roster, out_root)
            for a in _assignment_ids(course, tuple(assignments))
        )
        write_course_outputs(course, state, roster, out_root)
        return outputs


def _assignment_ids(course: Course, chosen: tuple[str, ...]) -> tuple[str, ...]:
    for assignment_id in chosen:
        course.assignment(assignment_id)  # raises ConfigError naming the known ones
    return chosen or tuple(course.assignments)


@contextmanager
def _run_log(course: Course, engine: EngineChoice) -> Iterator[Path]:
    """One log file per run under ``.grader/logs/``, with the token scrubbed."""
    logs = course.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = _new_log_file(logs, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # the run owns the token's scrubber for the whole run (not only while a client is
    # open): on this file and on every logger that sees URLs
    redaction = TokenFilter(engine.token)
    handler.addFilter(redaction)
    redaction.attach()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
        redaction.detach()


def _new_log_file(logs: Path, stamp: str) -> Path:
    """A log file no earlier run wrote: two runs in one second get ``-2``, ``-3``..."""
    for number in range(1, 1000):
        path = logs / (f"grade-{stamp}.log" if number == 1 else f"grade-{stamp}-{number}.log")
        try:
            path.open("x", encoding="utf-8").close()
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"too many runs in one second ({stamp})", file=str(logs))
