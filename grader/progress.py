"""Showing a run's progress: a live rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from grader.records import StudentOutcome

STAGES = ("fetch", "package", "submit", "grade")


class LiveProgress:
    """Per-stage counts, rate and ETA on a terminal."""

    def __init__(self, console: Console):
        self.display = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stages]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.started = time.monotonic()
        self.current: dict[tuple[str, str], str] = {}

    def start(self, total: int) -> None:
        self.task = self.display.add_task("grading", total=total, stages="", rate="")
        self.started = time.monotonic()

    def step(self, assignment: str, student_id: str, stage: str) -> None:
        self.current[(assignment, student_id)] = stage
        self._refresh()

    def finished(self, outcome: StudentOutcome) -> None:
        self.current.pop((outcome.assignment.id, outcome.student.student_id), None)
        if self.task is not None:
            self.display.advance(self.task)
            done = self.display.tasks[self.task].completed
            elapsed = max(time.monotonic() - self.started, 1e-9)
            self.display.update(self.task, rate=f"{done / elapsed:.1f}/s")
        self._refresh()

    def _refresh(self) -> None:
        counts = Counter(self.current.values())
        text = "  ".join(f"{stage} {counts[stage]}" for stage in STAGES if counts[stage])
        if self.task is not None:
            self.display.update(self.task, stages=text)


class LineProgress:
    """One plain line per finished student, with a rate and ETA (for logs and cron)."""

    def __init__(self, console: Console):
        self.console = console
        self.total = 0
        self.done = 0
        self.started = time.monotonic()

    def start(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.console.print(f"grading {total} student submissions")

    def step(self, assignment: str, student_id: str, stage: str) -> None:
        pass

    def finished(self, outcome: StudentOutcome) -> None:
        self.done += 1
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else 0.0
        score = f"{outcome.grade.score:g}" if outcome.grade else "-"
        self.console.print(
            f"[{self.done}/{self.total}] {outcome.assignment.id}/{outcome.student.student_id}: "
            f"{outcome.status} ({outcome.outcome}) score {score}; "
            f"{rate:.1f}/s, eta {eta:.0f}s",
            markup=False,
            highlight=False,
        )


@contextmanager
def make_progress(console: Console) -> Iterator[LiveProgress | LineProgress]:
    if console.is_terminal:
        live = LiveProgress(console)
        with live.display:
            yield live
    else:
        yield LineProgress(console)


class LiveSteps:
    """Long work in named steps (``grader similarity``): one bar per step, on a terminal."""

    def __init__(self, display: Progress):
        self.display = display
        self.task: TaskID | None = None

    def start(self, what: str, total: int) -> None:
        if self.task is not None:
            self.display.remove_task(self.task)
        self.task = self.display.add_task(what, total=total, stages="", rate="")

    def advance(self) -> None:
        if self.task is not None:
            self.display.advance(self.task)


class LineSteps:
    """Long work in named steps as plain lines: when a step starts, every few seconds
    while it runs, and when it ends (for logs and cron)."""

    EVERY = 5.0  # seconds between two lines of one step

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.clock = clock
        self.what, self.total, self.done = "", 0, 0
        self.started = self.shown = clock()

    def start(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.started = self.shown = self.clock()
        self.console.print(f"{what}: {total}", markup=False, highlight=False)

    def advance(self) -> None:
        self.done += 1
        now = self.clock()
        if self.done == self.total or now - self.shown >= self.EVERY:
            self.shown = now
            self.console.print(
                f"  {self.what}: {self.done}/{self.total} ({now - self.started:.1f}s)",
                markup=False,
                highlight=False,
            )


@contextmanager
def make_steps(console: Console) -> Iterator[LiveSteps | LineSteps]:
    if console.is_terminal:
        display = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        with display:
            yield LiveSteps(display)
    else:
        yield LineSteps(console)
