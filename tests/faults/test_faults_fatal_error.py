"""A fatal answer (401) while other students are still in flight ends the run cleanly.

Each run is the real CLI in its own process with a bounded timeout, because the
failure being guarded against is a hang: the 401 leaves the other students' tasks to
asyncio.run's shutdown, which cancels them wherever they are; one cancelled inside
``asyncio.create_subprocess_exec`` (a git fetch) never finishes on Python 3.11
(CPython gh-103847 / gh-125502), and the others hit the closed client and leave
tracebacks in the run log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.proxy import FaultProxy
from tests.support.course_kit import SOLUTIONS, write_course

pytestmark = [pytest.mark.faults, pytest.mark.sandbox]

RUNS = 8  # the hang shows about once in eight runs on two busy cores
RUN_SECONDS = 60


def test_a_401_with_students_in_flight_exits_3_promptly_without_tracebacks(
    proxy: FaultProxy, student_repos: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "SPHERE_ENGINE_TOKEN": "tok-wrong-2b7d"}
    env.pop("SPHERE_ENGINE_URL", None)
    for attempt in range(RUNS):
        course = write_course(tmp_path / f"course{attempt}", student_repos)
        command = [sys.executable, "-m", "grader", "grade", str(course), "--engine", proxy.url]
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {attempt + 1} of {len(SOLUTIONS)} students hung after the 401")
        assert done.returncode == 3, done.stderr
        assert done.stderr.count("\n") == 1 and "unauthorized" in done.stderr, done.stderr
        (log,) = (course / ".grader" / "logs").glob("grade-*.log")
        assert "Traceback" not in log.read_text(), log.read_text()[-2000:]
