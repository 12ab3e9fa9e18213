"""One student's hostile submission stops neither the course's grading nor the next run.

The student's solution.py builds every kind of tree in the workspace when the checks
import it (3000 levels deep, locked folders, names that are not UTF-8, links to /).
`grader grade` with the built-in engine grades everyone, and a second `grader grade`
on the same course (the same .grader/engine, nothing deleted by hand) does too.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.course_kit import PROJECT, write_course
from tests.support.repos import GOOD, HALF, ON_TIME, commit
from tests.support.served import grader_env
from tests.support.treekit import ATTACK, ATTACK_DONE, remove_trees_under

pytestmark = pytest.mark.sandbox

RUN_LIMIT = 300  # seconds: a run that takes longer has hung on the attacker
STUDENTS = {"s01": GOOD, "s02": HALF, "attacker": GOOD + ATTACK}


@pytest.fixture(autouse=True)
def _no_tree_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    remove_trees_under(tmp_path)


def grade(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(course), *args],
        env=grader_env(),
        cwd=course.parent,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        check=False,
    )


def graded(course: Path) -> dict[str, tuple[str, str]]:
    with (course / "out" / PROJECT / "gradebook.csv").open(newline="") as fp:
        return {row["student_id"]: (row["status"], row["score"]) for row in csv.DictReader(fp)}


def attack_outputs(course: Path) -> int:
    """How many of the engine's stored run outputs say the attack completed."""
    streams = (course / ".grader" / "engine" / "submissions").glob("*/streams/stage_run_output")
    return sum(ATTACK_DONE in path.read_text(errors="replace") for path in streams)


def test_a_student_leaving_every_kind_of_tree_stops_neither_this_grade_nor_the_next(
    tmp_path: Path,
) -> None:
    repos = tmp_path / "repos"
    for student, solution in STUDENTS.items():
        commit(repos / student, {"solution.py": f"# {student}\n{solution}"}, "solve", ON_TIME)
    course = write_course(tmp_path / "course", repos, students=tuple(STUDENTS))
    expected = {"s01": ("graded", "10.0"), "s02": ("graded", "7.0"), "attacker": ("graded", "10.0")}
    first = grade(course)
    assert first.returncode == 0, first.stdout + first.stderr
    assert attack_outputs(course) == 1
    assert graded(course) == expected
    again = grade(course, "--force")  # every student through the engine again
    assert again.returncode == 0, again.stdout + again.stderr
    assert attack_outputs(course) == 2
    assert graded(course) == expected
