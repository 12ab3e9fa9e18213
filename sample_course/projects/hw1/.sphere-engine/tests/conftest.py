"""Instructor fixtures for Homework 1: the student's ``solution.py``, run apart from the tests.

``grader_harness`` imports ``solution.py`` in a process of its own (a sandbox of its own
under grader's local engine): the student's code cannot see these files, change pytest or
write the report. Arguments and results cross as plain data, and each call has a time
limit (``grader_call_timeout`` in ``../pytest.ini``), so a function that never returns
fails its own tests and no others.
"""

from __future__ import annotations

import grader_harness as harness
import pytest

# Made here, at import: the student's process starts while pytest collects the tests.
SOLUTION = harness.module("solution")


@pytest.fixture(scope="session")
def solution() -> harness.StudentModule:
    """The student's module (imported on the first call; a missing file fails each test)."""
    return SOLUTION
