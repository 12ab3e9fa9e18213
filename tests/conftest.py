"""Fixtures shared by every test area: real git repositories and tiny real courses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

TINY_CONFTEST = """
import os, sys

# the run stage starts python with -P: the workspace is appended, only to find solution.py
sys.path.append(os.environ["SE_PATH_WORKSPACE"])
"""

TINY_TESTS = """
from solution import add, mul

def test_public_add():
    assert add(2, 3) == 5

def test_public_mul():
    assert mul(2, 3) == 6

def test_hidden_add_negative():
    assert add(-2, -3) == -5
"""

TINY_CONFIG = {
    "version": 2.1,
    "scenarios": {
        "grade": {
            "default": True,
            "network": False,
            "stages": {
                "run": {
                    "command": "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -B -P -m pytest -q "
                    "-p no:cacheprovider .sphere-engine/tests "
                    '--junitxml="$SE_PATH_UNIT_TESTS_REPORT"',
                    "timeout": 20,
                },
                "test": {"command": "se_utils_cli evaluate", "timeout": 10},
            },
        }
    },
    "files": {"read_only": [".sphere-engine"]},
}


@pytest.fixture(autouse=True, scope="session")
def _matplotlib_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """copydetect (grader similarity) imports matplotlib, which writes a font cache under
    the user's home: in the tests it goes under pytest's temporary folder instead."""
    os.environ.setdefault("MPLCONFIGDIR", str(tmp_path_factory.mktemp("matplotlib")))


@pytest.fixture
def tiny_course(tmp_path: Path) -> Path:
    """A course with one Python assignment, a project, and no student repositories yet."""
    course = tmp_path / "course"
    project = course / "projects" / "add"
    (project / ".sphere-engine" / "tests").mkdir(parents=True)
    (project / ".sphere-engine" / "tests" / "test_add.py").write_text(TINY_TESTS)
    (project / ".sphere-engine" / "tests" / "conftest.py").write_text(TINY_CONFTEST)
    (project / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2))
    (course / "course.toml").write_text(
        '[course]\nname = "Tiny"\n\n'
        "[assignments.add]\n"
        "deadline = 2026-10-01T23:59:00Z\n"
        'repo = "repos/{student_id}"\n'
        "max_points = 10\n"
        "[assignments.add.tests]\n"
        '"test_public_*" = 3\n'
        '"test_hidden_*" = { points = 4, visibility = "hidden" }\n'
    )
    (course / "roster.csv").write_text(
        "student_id,name,email\nada,Ada L,ada@example.edu\nbob,Bob K,bob@example.edu\n"
        "cy,Cy M,cy@example.edu\n"
    )
    return course
