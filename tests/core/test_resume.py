"""Stopped runs resume: Ctrl-C lets running submissions finish, and a grader killed while
a served engine keeps running picks its submissions up again instead of resubmitting.

Real `python -m grader grade` processes on the crash suite's course of a dozen students;
the second test also runs `python -m grader engine serve` as its own process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.state import SubmissionRow
from tests.support.course_kit import STUDENTS, make_course
from tests.support.crashkit import (
    Trigger,
    engine_submissions,
    grader_rows,
    run_grade,
)
from tests.support.served import grader_env, served_engine

TOKEN = "resume-token-7f1e"
GRADABLE = sum(1 for work in STUDENTS.values() if work is not None)


def interrupt_once(course: Path, logs: Path) -> subprocess.CompletedProcess[str]:
    """Start a run, press Ctrl-C once when a first submission is final, let it end."""
    logs.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(
        [sys.executable, "-m", "grader", "grade", str(course)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=grader_env(),
    ) as process:
        deadline = time.monotonic() + 60
        while not any(r.state == "final" for r in grader_rows(course)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_ctrl_c_lets_running_submissions_finish_and_the_next_run_resumes(
    tmp_path: Path,
) -> None:
    course = make_course(tmp_path)

    stopped = interrupt_once(course, tmp_path / "logs")

    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted" in stopped.stderr
    assert "left for the next run" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    rows = grader_rows(course)
    with_id = [r for r in rows if r.engine_id is not None]
    assert with_id, "something ran before Ctrl-C"
    assert all(r.state == "final" for r in with_id), "a running submission was abandoned"
    assert len({r.student_id for r in with_id}) < GRADABLE  # nothing new was started
    graded_before = {r.archive_sha256 for r in with_id}
    gradebook = (course / "out" / "calc" / "gradebook.csv").read_text()
    assert gradebook.count(",graded,") == len(graded_before)  # what finished was written

    resumed = run_grade(course, tmp_path / "logs", None, name="resumed")

    assert resumed.returncode == 1, resumed.stderr  # s07 has no repository

    def rows_seen(rows: list[SubmissionRow]) -> list[tuple[object, ...]]:
        return [(r.student_id, r.state, r.engine_id, r.status_code, r.detail) for r in rows]

    assert f"submissions created: {GRADABLE - len(graded_before)}" in resumed.stdout, (
        resumed.stdout,
        rows_seen(rows),
        rows_seen(grader_rows(course)),
        [log.read_text()[-5000:] for log in sorted((course / ".grader" / "logs").glob("*.log"))],
    )
    assert f"reused: {len(graded_before)}" in resumed.stdout
    gradebook = (course / "out" / "calc" / "gradebook.csv").read_text()
    assert gradebook.count(",graded,") == GRADABLE


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`grader engine serve` for the course's projects; yields its URL and data folder."""
    course = make_course(tmp_path)
    with served_engine(course / "projects", tmp_path, token=TOKEN) as served:
        yield served.url, served.data_dir


def test_killed_grader_follows_its_submissions_again_on_a_served_engine(
    tmp_path: Path, engine: tuple[str, Path]
) -> None:
    url, data = engine
    course, logs = tmp_path / "course", tmp_path / "logs"
    remote = {"args": ("--engine", url), "env": {"SPHERE_ENGINE_TOKEN": TOKEN}}
    following = Trigger("two submissions being followed", lambda p: p.created >= 2)

    killed = run_grade(course, logs, following, name="killed", **remote)  # type: ignore[arg-type]
    assert killed.killed
    left = {r.engine_id for r in grader_rows(course) if r.state == "created"}
    assert len(left) >= 2

    resumed = run_grade(course, logs, None, name="resumed", **remote)  # type: ignore[arg-type]

    assert resumed.returncode == 1, resumed.stderr  # s07 has no repository
    rows = grader_rows(course)
    assert {r.engine_id for r in rows if r.engine_id in left} == left
    assert all(r.state == "final" for r in rows if r.engine_id in left)  # followed, not redone
    with_id = [r for r in rows if r.engine_id is not None]
    assert len(with_id) == len({r.archive_sha256 for r in with_id}) == GRADABLE
    # the engine ran nothing twice, but for the one submission a SIGKILL may orphan
    # (created, its id not yet stored: the bound the crash suite checks too)
    assert GRADABLE <= len(engine_submissions(data)) <= GRADABLE + 1
