"""Small real courses for the suites that run the whole grader: one engine project whose
checks are a few lines of plain Python writing JUnit XML, and real student git repos.

No pytest in the sandbox: a submission costs a Python start-up (a few tens of ms), so
suites stay fast and, in the crash suite, submissions overlap and a kill lands among
many of them. Every student's archive differs (a comment names the student), so no two
students share a submission key and each one costs exactly one engine submission when
nothing fails.

* ``write_course`` (fault suite, fuzz): twelve students' repos outside the course, the
  [engine] table tuned for retries on loopback;
* ``make_course`` (crash, resume, bad-input, CLI suites): a dozen students committing
  at different times around the deadline (late, broken, missing), repos inside it.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.repos import GOOD, HALF, ON_TIME, commit

PROJECT = "add"

CHECK = '''"""Three checks on the student's solution.py, written as JUnit XML."""
import os
import sys
from xml.sax.saxutils import quoteattr

sys.path.append(os.environ["SE_PATH_WORKSPACE"])
CHECKS = {
    "test_public_add": "add(2, 3) == 5",
    "test_public_mul": "mul(2, 3) == 6",
    "test_hidden_add_negative": "add(-2, -3) == -5",
}
try:
    import solution
    names, broken = vars(solution), None
except Exception as exc:
    names, broken = {}, f"{type(exc).__name__}: {exc}"
cases = []
for name, check in CHECKS.items():
    verdict = ""
    if broken:
        verdict = f"<error message={quoteattr(broken)}/>"
    else:
        try:
            if not eval(check, dict(names)):
                verdict = f"<failure message={quoteattr(check)}/>"
        except Exception as exc:
            verdict = f"<error message={quoteattr(repr(exc))}/>"
    cases.append(f'<testcase classname="checks" name="{name}" time="0">{verdict}</testcase>')
xml = f'<testsuite name="checks" tests="{len(cases)}">{"".join(cases)}</testsuite>'
with open(os.environ["SE_PATH_UNIT_TESTS_REPORT"], "w") as out:
    out.write(xml)
'''

CONFIG = {
    "version": 2.1,
    "scenarios": {
        "grade": {
            "default": True,
            "network": False,
            "stages": {
                "run": {"command": "python3 -B -P .sphere-engine/check.py", "timeout": 20},
                "test": {"command": "se_utils_cli evaluate", "timeout": 10},
            },
        }
    },
    "files": {"read_only": [".sphere-engine"]},
}

BROKEN = "def add(a, b):\n    return a +\n"
SOLUTIONS = {
    **{f"s{n:02d}": GOOD for n in range(1, 10)},
    "s10": HALF,
    "s11": HALF,
    "s12": BROKEN,
}
"""Twelve students: nine pass, two fail a test, one does not even import."""


def write_project(projects: Path, name: str = PROJECT) -> None:
    """The engine project ``name`` under ``projects``: config.json and the checks."""
    folder = projects / name
    (folder / ".sphere-engine").mkdir(parents=True, exist_ok=True)
    (folder / ".sphere-engine" / "check.py").write_text(CHECK)
    (folder / "config.json").write_text(json.dumps(CONFIG, indent=2))


def write_repos(root: Path) -> Path:
    """One git repository per student under ``root``; returns ``root``."""
    for student, solution in SOLUTIONS.items():
        text = f"# {student}\n{solution}"  # unique bytes: no shared submission key
        commit(root / student, {"solution.py": text}, "solve", ON_TIME)
    return root


def write_course(
    folder: Path,
    repos: Path,
    *,
    students: Sequence[str] = tuple(SOLUTIONS),
    infra_retries: int = 2,
) -> Path:
    """A course over ``repos`` whose [engine] table keeps retries fast on loopback."""
    write_project(folder / "projects")
    rows = ["student_id,name,email"]
    rows += [f"{s},Student {s},{s}@example.edu" for s in students]
    (folder / "roster.csv").write_text("\n".join(rows) + "\n")
    (folder / "course.toml").write_text(
        '[course]\nname = "Faults"\n\n'
        "[engine]\n"
        "concurrency = 4\n"
        "requests_per_second = 1000\n"
        f"infra_retries = {infra_retries}\n"
        'submission_timeout = "2m"\n\n'
        f"[assignments.{PROJECT}]\n"
        "deadline = 2026-10-01T23:59:00Z\n"
        f'repo = "{repos}/{{student_id}}"\n'
        "max_points = 10\n"
        f"[assignments.{PROJECT}.tests]\n"
        '"test_public_*" = 3\n'
        '"test_hidden_*" = { points = 4, visibility = "hidden" }\n'
    )
    return folder


RUN_SPECIFIC = ("submission_id", "attempts")
"""Gradebook columns that name the engine's ids or count retries, not the grade."""


def gradebook(course: Path) -> list[dict[str, str]]:
    """The gradebook rows without the run-specific columns."""
    with (course / "out" / PROJECT / "gradebook.csv").open() as fp:
        return [
            {k: v for k, v in row.items() if k not in RUN_SPECIFIC} for row in csv.DictReader(fp)
        ]


def grader_records(course: Path, run_id: int) -> dict[str, Any]:
    """What the grader's SQLite says about one run: grades and submissions per student."""
    uri = f"file:{course / '.grader' / 'state.sqlite3'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        grades = db.execute(
            "SELECT student_id, status FROM grades WHERE run_id = ?", (run_id,)
        ).fetchall()
        finals = db.execute(
            "SELECT student_id, engine_id FROM submissions WHERE run_id = ? AND state = 'final'",
            (run_id,),
        ).fetchall()
        created = db.execute(
            "SELECT COUNT(*) FROM submissions WHERE run_id = ? AND engine_id IS NOT NULL",
            (run_id,),
        ).fetchone()[0]
    return {
        "grades": Counter(s for s, _ in grades),
        "graded": sorted(s for s, status in grades if status == "graded"),
        "finals": Counter(s for s, _ in finals),
        "final_engine_ids": [e for _, e in finals],
        "created": created,
    }


# the crash suite's course ------------------------------------------------------------

DEADLINE = datetime(2026, 10, 1, 23, 59, tzinfo=UTC)

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
    """Write ``root/course`` (assignment and project "calc") and every student's repo."""
    course = root / "course"
    write_project(course / "projects", "calc")
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
