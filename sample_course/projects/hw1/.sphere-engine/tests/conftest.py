"""Instructor fixtures for Homework 1: import the student's ``solution.py`` from the workspace.

The run stage starts Python with ``-P`` (the workspace is not put in front of ``sys.path``),
so a student file named like a standard module (``string.py``, ``random.py``) cannot break
pytest itself. The workspace is appended instead, only to find ``solution``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

# .sphere-engine/tests/conftest.py -> the workspace is two folders up
WORKSPACE = Path(os.environ.get("SE_PATH_WORKSPACE") or Path(__file__).resolve().parents[2])
if str(WORKSPACE) not in sys.path:
    sys.path.append(str(WORKSPACE))


@pytest.fixture
def solution() -> ModuleType:
    """The student's module; an import error fails each test on its own, not the whole run."""
    if not (WORKSPACE / "solution.py").is_file():
        pytest.fail("solution.py is missing from the repository root")
    return importlib.import_module("solution")
