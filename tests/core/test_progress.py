"""Progress: a live display on a terminal, one plain line per student otherwise."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from grader.grading import GradeOptions, grade
from grader.progress import (
    LineProgress,
    LineSteps,
    LiveProgress,
    LiveSteps,
    make_progress,
    make_steps,
)
from tests.support.repos import GOOD, ON_TIME, commit


def test_terminal_gets_a_live_bar_with_stage_counts_and_rate(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    seen: list[str] = []
    with make_progress(console) as progress:
        assert isinstance(progress, LiveProgress)
        step = progress.step

        def spy(assignment: str, student_id: str, stage: str) -> None:
            step(assignment, student_id, stage)
            seen.append(str(progress.display.tasks[0].fields["stages"]))

        progress.step = spy  # type: ignore[method-assign]
        grade(GradeOptions(tiny_course), progress=progress)
    task = progress.display.tasks[0]
    assert (task.completed, task.total) == (3, 3)
    assert "fetch 1" in seen[0]
    assert any("submit" in text for text in seen)
    assert str(task.fields["rate"]).endswith("/s")


def test_without_a_terminal_each_student_is_one_plain_line(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with make_progress(console) as progress:
        assert isinstance(progress, LineProgress)
        grade(GradeOptions(tiny_course), progress=progress)
    lines = out.getvalue().splitlines()
    assert lines[0] == "grading 3 student submissions"
    assert len(lines) == 4
    assert any("add/ada: graded (ok) score 10" in line for line in lines)
    assert all("/s, eta " in line for line in lines[1:])
    assert "\x1b" not in out.getvalue()


def test_long_steps_print_a_line_every_few_seconds_and_at_the_end() -> None:
    out = io.StringIO()
    now = [0.0]
    steps = LineSteps(Console(file=out, force_terminal=False, width=200), clock=lambda: now[0])
    steps.start("reading workspaces", 500)
    for _ in range(500):
        now[0] += 0.125  # 62.5 s in all: a line every 5 s (40 steps), then the last one
        steps.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "reading workspaces: 500"
    assert len(lines) == 1 + 12 + 1
    assert lines[1] == "  reading workspaces: 40/500 (5.0s)"
    assert lines[-1] == "  reading workspaces: 500/500 (62.5s)"


def test_a_terminal_gets_one_bar_per_step() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with make_steps(console) as steps:
        assert isinstance(steps, LiveSteps)
        steps.start("reading workspaces", 3)
        for _ in range(3):
            steps.advance()
        steps.start("comparing pairs", 2)
        steps.advance()
        (task,) = steps.display.tasks
    assert (task.description, task.completed, task.total) == ("comparing pairs", 1, 2)
