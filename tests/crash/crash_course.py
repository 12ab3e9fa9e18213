"""A small course for the crash suite: a dozen students, a run stage of a few tens of ms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import commit

DEADLINE = datetime(2026, 10, 1, 23, 59, tzinfo=UTC)

# Plain Python instead of pytest: the run stage takes a few tens of milliseconds, so
# submissions overlap and a kill lands among many of them.
CHECK = """
import os, sys
from xml.sax.saxutils import escape

sys.path.append(os.environ["SE_PATH_WORKSPACE"])
cases = []
try:
    import solution
except Exception as exc:
    solution = None
    failure = repr(exc)
for name, call, want in [
    ("test_public_add", lambda s: s.add(2, 3), 5),
    ("test_public_mul", lambda s: s.mul(2, 3), 6),
    ("test_hidden_add_negative", lambda s: s.add(-2, -3), -5),
]:
    try:
        got = call(solution) if solution else None
        ok = solution is not None and got == want
        why = failure if solution is None else f"expected {want}, got {got!r}"
    except Exception as exc:
        ok, why = False, repr(exc)
    body = "" if ok else f'<failure message="{escape(why, {chr(34): "&quot;"})}"/>'
    cases.append(f'<testcase classname="check" name="{name}" time="0.001">{body}</testcase>')
with open(os.environ["SE_PATH_UNIT_TESTS_REPORT"], "w") as fp:
    fp.write(f'<testsuite name="check" tests="{len(cases)}">{"".join(cases)}</testsuite>')
"""

CONFIG = {
    "version": 2.1,
    "scenarios": {
        "grade": {
            "default": True,
            "network": False,
            "stages": {
                "run": {"command": "python3 -B -P .sphere-engine/check.py", "timeout": 10},
                "test": {"command": "se_utils_cli evaluate", "timeout": 10},
            },
        }
    },
    "files": {"read_only": [".sphere-engine"]},
}

GOOD = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n"
HALF = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a + b\n"
BROKEN = "def add(a, b)\n    return a + b\n"

# student -> (solution, hours before the deadline it was committed); None: no repository
STUDENTS: dict[str, tuple[str, float] | None] = {
    "s01": (GOOD, 30),
    "s02": (HALF, 20),
    "s03": (GOOD, 5),
    "s04": (BROKEN, 10),
    "s05": (GOOD, -26),  # a day and two hours late
    "s06": (HALF, 1),
    "s07": None,
    "s08": (GOOD, 48),
    "s09": (HALF, 3),
    "s10": (GOOD, 0.1),
    "s11": (BROKEN, -5),
    "s12": (GOOD, 12),
}


def make_course(root: Path) -> Path:
    """Write the course folder and every student's git repository under ``root``."""
    course = root / "course"
    project = course / "projects" / "calc"
    (project / ".sphere-engine").mkdir(parents=True)
    (project / ".sphere-engine" / "check.py").write_text(CHECK)
    (project / "config.json").write_text(json.dumps(CONFIG, indent=2))
    (course / "course.toml").write_text(
        '[course]\nname = "Crash"\n\n'
        "[engine]\nslots = 2\n\n"
        "[assignments.calc]\n"
        f"deadline = {DEADLINE:%Y-%m-%dT%H:%M:%SZ}\n"
        'repo = "repos/{student_id}"\n'
        "max_points = 10\n"
        "[assignments.calc.tests]\n"
        '"test_public_*" = 3\n'
        '"test_hidden_*" = { points = 4, visibility = "hidden" }\n'
        "[assignments.calc.late]\n"
        "percent_per_day = 10\n"
        "max_days = 3\n"
    )
    lines = ["student_id,name,email"]
    for student, work in STUDENTS.items():
        lines.append(f"{student},Student {student[1:]},{student}@example.edu")
        if work is None:
            continue
        solution, hours = work
        when = DEADLINE - timedelta(hours=hours)
        repo = course / "repos" / student
        commit(repo, {"README.md": f"{student}\n"}, "start", when - timedelta(days=3))
        # a comment of its own: no two students' archives are identical
        commit(repo, {"solution.py": f"# {student}\n{solution}"}, "solve", when)
    (course / "roster.csv").write_text("\n".join(lines) + "\n")
    return course
