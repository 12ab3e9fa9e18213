"""Instructor fixtures for Homework 2: run the student's compiled ``prog`` on an input.

The build stage compiles ``src/*.c`` into ``prog`` at the workspace root (as the student:
it cannot read these files). Each test feeds the program some lines on stdin and compares
what it prints. ``grader_harness.run`` starts the program apart from the tests (a sandbox
of its own under grader's local engine) with a time limit, and ends whatever it started,
so a crash or a hang fails one test, not the whole run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import grader_harness as harness
import pytest

# .sphere-engine/tests/conftest.py -> the workspace is two folders up
WORKSPACE = Path(os.environ.get("SE_PATH_WORKSPACE") or Path(__file__).resolve().parents[2])
TIME_LIMIT = 2.0  # seconds per run; every expression here takes microseconds


@pytest.fixture
def rpn() -> Callable[[str], str]:
    """Run ``prog`` with ``text`` on stdin and return its stdout (failing the test on a crash)."""
    if not (WORKSPACE / "prog").is_file():
        pytest.fail("prog was not built")

    def run(text: str) -> str:
        done = harness.run(["./prog"], stdin=text, timeout=TIME_LIMIT)
        if done.returncode != 0:
            status = f"signal {done.signal}" if done.signal else f"status {done.returncode}"
            pytest.fail(f"prog exited with {status}\nstderr: {done.stderr[-500:]}")
        return done.stdout

    return run
