"""One student's hostile submission stops neither the course's grading nor the next run.

The student's solution.py builds every kind of tree in the workspace when the checks
import it (3000 levels deep, locked folders, names that are not UTF-8, links to /).
`grader grade` with the built-in engine grades everyone, and a second `grader grade`
on the same course (the same .grader/engine, nothing deleted by hand) does too.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.course_kit import PROJECT, write_course, write_project
from tests.support.repos import GOOD, HALF, ON_TIME, commit
from tests.support.served import grader_env, served_engine
from tests.support.treekit import ATTACK, ATTACK_DONE, remove_trees_under

pytestmark = pytest.mark.sandbox

RUN_LIMIT = 300  # seconds: a run that takes longer has hung on the attacker
STUDENTS = {"s01": GOOD, "s02": HALF, "attacker": GOOD + ATTACK}
SLEEPER = "import time\ntime.sleep(600)\n"  # at import, when the checks load solution.py


@pytest.fixture(autouse=True)
def _no_tree_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    remove_trees_under(tmp_path)


def grade(
    course: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(course), *args],
        env={**grader_env(), **(env or {})},
        cwd=course.parent,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        check=False,
    )


def with_timeouts(config_file: Path, run: float, test: float) -> None:
    config = json.loads(config_file.read_text())
    stages = config["scenarios"]["grade"]["stages"]
    stages["run"]["timeout"], stages["test"]["timeout"] = run, test
    config_file.write_text(json.dumps(config))


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


def test_a_submission_past_its_deadline_is_not_graded_and_the_run_goes_on(tmp_path: Path) -> None:
    """The course's copy of the project says its stages end within 3 s; the engine's copy
    lets the run stage take ten minutes (an engine out of step with the course, or a
    broken one). Past 3 s plus the margin the grader records an engine failure for that
    student alone, grades everyone else, and exits 1."""
    repos = tmp_path / "repos"
    for student, solution in {"s01": GOOD, "sleeper": SLEEPER + GOOD}.items():
        commit(repos / student, {"solution.py": f"# {student}\n{solution}"}, "solve", ON_TIME)
    course = write_course(tmp_path / "course", repos, students=("s01", "sleeper"), infra_retries=0)
    toml = course / "course.toml"
    fixed, margin = 'submission_timeout = "2m"', 'submission_margin = "1s"'
    toml.write_text(toml.read_text().replace(fixed, margin))
    with_timeouts(course / "projects" / PROJECT / "config.json", run=2, test=1)
    engine_projects = tmp_path / "engine-projects"
    write_project(engine_projects)
    with_timeouts(engine_projects / PROJECT / "config.json", run=600, test=10)
    with served_engine(engine_projects, tmp_path / "served") as engine:
        token = {"SPHERE_ENGINE_TOKEN": engine.token}
        result = grade(course, "--engine", engine.url, env=token)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not final after 4 s" in result.stdout + result.stderr
    rows = graded(course)
    assert rows["s01"] == ("graded", "10.0")
    assert rows["sleeper"][0] == "not graded" and rows["sleeper"][1] == ""
