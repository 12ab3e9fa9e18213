"""Instructor fixtures for Homework 2: run the student's compiled ``prog`` on an input.

The build stage compiles ``src/*.c`` into ``prog`` at the workspace root. Each test feeds
the program some lines on stdin and compares what it prints. The program runs as its own
process with a time limit, so a crash or a hang fails one test, not the whole run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

# .sphere-engine/tests/conftest.py -> the workspace is two folders up
WORKSPACE = Path(os.environ.get("SE_PATH_WORKSPACE") or Path(__file__).resolve().parents[2])
PROGRAM = WORKSPACE / "prog"
TIME_LIMIT = 2.0  # seconds per run; every expression here takes microseconds


@pytest.fixture
def rpn() -> Callable[[str], str]:
    """Run ``prog`` with ``text`` on stdin and return its stdout (failing the test on a crash)."""
    if not PROGRAM.is_file():
        pytest.fail("prog was not built")

    def run(text: str) -> str:
        done = subprocess.run(
            [str(PROGRAM)],
            input=text,
            capture_output=True,
            text=True,
            timeout=TIME_LIMIT,
            cwd=WORKSPACE,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"prog exited with status {done.returncode}\nstderr: {done.stderr[-500:]}")
        return done.stdout

    return run
