"""A full run on the built-in engine: a student who smuggles the hidden tests into every
stream reads none of them in anything written for students; the instructor reads all."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grader.exporting import export
from grader.grading import GradeOptions, grade
from grader.reports.hidden import line_key, non_trivial
from tests.support.repos import commit

ON_TIME = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)

PUBLIC = """
from solution import add, mul

def test_public_add():
    assert add(2, 3) == 5

def test_public_mul():
    assert mul(2, 3) == 6
"""

HIDDEN = '''"""Hidden checks: the corner cases of add and mul."""
from solution import add, mul

def test_hidden_add_negative_numbers():
    assert add(-20, -30) == -50, "negative operands must add up"

def test_hidden_mul_by_zero_is_zero():
    assert mul(123456, 0) == 0, "anything times zero is zero"
'''

# the student got the hidden file somehow; whatever the engine lets them read, the
# grader must not hand it back: raised, printed to stdout and stderr, returned
LEAKER = f"""
import sys
SECRET = {HIDDEN!r}

def add(a, b):
    print(SECRET)
    print(SECRET, file=sys.stderr)
    raise ValueError(SECRET)

def mul(a, b):
    return SECRET
"""


@pytest.fixture
def leaky_course(tiny_course: Path) -> Path:
    tests = tiny_course / "projects" / "add" / ".sphere-engine" / "tests"
    (tests / "test_add.py").unlink()
    (tests / "test_public.py").write_text(PUBLIC)
    (tests / "test_hidden.py").write_text(HIDDEN)
    config_file = tiny_course / "projects" / "add" / "config.json"
    config = json.loads(config_file.read_text())
    run = config["scenarios"]["grade"]["stages"]["run"]
    # captured output in the report too, as many projects ask
    run["command"] = run["command"].replace(
        "pytest -q", "pytest -q -o junit_family=xunit1 -o junit_logging=all"
    )
    config_file.write_text(json.dumps(config))
    commit(tiny_course / "repos" / "ada", {"solution.py": LEAKER}, "leak", ON_TIME)
    return tiny_course


def hidden_keys() -> list[str]:
    return [line_key(line) for line in HIDDEN.splitlines() if non_trivial(line)]


def leaked(path: Path) -> list[str]:
    flat = line_key(html.unescape(path.read_text(encoding="utf-8")).replace("\\_", "_"))
    return [key for key in hidden_keys() if key in flat]


def test_nothing_hidden_reaches_the_students_files(leaky_course: Path) -> None:
    result = grade(GradeOptions(leaky_course, students=("ada",)))
    (outcome,) = result.summary.outcomes
    assert outcome.status == "graded", outcome.reason
    out = leaky_course / "out" / "add"
    export(leaky_course, "add", "gradescope")
    export(leaky_course, "add", "moodle")
    student_files = [
        out / "feedback" / "ada.md",
        out / "feedback" / "ada.html",
        out / "manifest" / "ada.json",
        out / "results" / "ada.json",
        out / "moodle.csv",
    ]
    for path in student_files:
        assert leaked(path) == [], path
        assert "test_hidden" not in path.read_text(encoding="utf-8").replace("\\_", "_"), path
    feedback = (out / "feedback" / "ada.md").read_text(encoding="utf-8")
    assert "[hidden]" in feedback
    assert "test\\_public\\_add" in feedback  # the student's own tests still read
    instructor = out / "instructor" / "ada.html"
    assert len(leaked(instructor)) == len(hidden_keys())  # the instructor sees it all
