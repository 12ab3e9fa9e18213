"""Projects with a requirements.txt get an environment of their own, built once by uv.

Real parts: uv installs from the package index, the real sandbox runs the stages, the
in-process engine is driven over HTTP. ``six`` stands for any package the grader's own
environment lacks (checked below, so the test cannot pass by accident).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from appkit import archive, engine_client, make_config, make_project, q, submit, wait_final
from runner_kit import needs_sandbox

from grader.api.models import StatusCode
from grader.engine.environments import (
    READY,
    EnvironmentBuildError,
    Environments,
    requirements_of,
)
from tests.support.course_kit import PROJECT, gradebook, write_course
from tests.support.repos import ON_TIME, commit

pytestmark = [pytest.mark.sandbox, needs_sandbox]

PACKAGE = "six"  # small, pure Python, on the index, not among grader's dependencies
RUN = "python3 -P -m grader_harness pytest -q -p no:cacheprovider .sphere-engine/tests"
CONFTEST = """
import grader_harness as harness
import pytest

SOLUTION = harness.module("solution")


@pytest.fixture(scope="session")
def solution():
    return SOLUTION
"""
TESTS = """
import sys

import six


def test_the_tests_process_imports_the_package():
    assert six.PY3 and sys.prefix == "/sphere-engine/env"


def test_the_students_process_imports_it_too(solution):
    assert solution.where() == ["six", "/sphere-engine/env"]
"""
SOLUTION = """
import sys

import six


def where():
    return [six.__name__, sys.prefix]
"""


def project_with(projects: Path, name: str, requirements: str) -> Path:
    config = {
        "version": 2.1,
        "scenarios": {
            "grade": {
                "default": True,
                "stages": {
                    "run": {"command": RUN, "timeout": 60},
                    "test": {"command": "se_utils_cli evaluate", "timeout": 20},
                },
            }
        },
        "files": {"read_only": [".sphere-engine"]},
    }
    folder = make_project(projects, name, config)
    tests = folder / ".sphere-engine" / "tests"
    tests.mkdir(parents=True)
    (tests / "conftest.py").write_text(CONFTEST)
    (tests / "test_env.py").write_text(TESTS)
    (folder / "requirements.txt").write_text(requirements)
    return folder


def counting_uv(tmp_path: Path) -> tuple[str, Path]:
    """A uv that logs each call, then runs the real one."""
    from uv import find_uv_bin

    log = tmp_path / "uv-calls"
    script = tmp_path / "uv"
    script.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {find_uv_bin()} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), log


def test_the_package_is_not_in_graders_own_environment() -> None:
    assert importlib.util.find_spec(PACKAGE) is None


def test_a_project_with_requirements_is_graded_in_its_own_environment(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    project_with(projects, "needs-six", f"{PACKAGE}>=1.16\n")
    config = make_config(tmp_path, projects_dir=projects)

    async def scenario() -> list[dict[str, object]]:
        async with engine_client(config) as client:
            source = archive({"solution.py": SOLUTION.encode()})
            created = [
                (await submit(client, "needs-six", source=source)).json()["id"] for _ in range(2)
            ]
            return [await wait_final(client, sid, seconds=300) for sid in created]

    for body in asyncio.run(scenario()):
        result = body["result"]
        assert isinstance(result, dict)
        assert result["status"]["code"] == StatusCode.OK, json.dumps(body)
        assert result["score"] == 100
    built = [entry for entry in (tmp_path / "data" / "environments").iterdir() if entry.is_dir()]
    assert len(built) == 1  # two submissions at once, one environment
    assert f"{PACKAGE}==" in (built[0] / READY).read_text()


def test_concurrent_submissions_build_the_environment_once(tmp_path: Path) -> None:
    project = project_with(tmp_path / "projects", "p", f"{PACKAGE}\n")
    uv, log = counting_uv(tmp_path)
    environments = Environments(tmp_path / "environments", uv=uv)
    paths: list[Path | None] = []

    def ensure() -> None:
        paths.append(environments.ensure(project, "p"))

    threads = [threading.Thread(target=ensure) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1 and paths[0] is not None
    assert log.read_text().split().count("venv") == 1
    # a second engine on the same data finds it ready and builds nothing
    again = Environments(tmp_path / "environments", uv=uv).ensure(project, "p")
    assert again == paths[0] and log.read_text().split().count("venv") == 1
    # the same requirements in another project share it; a changed file gets its own
    twin = project_with(tmp_path / "projects", "twin", f"{PACKAGE}  # the same\n")
    assert environments.ensure(twin, "twin") == paths[0]


def test_a_build_that_died_is_built_again(tmp_path: Path) -> None:
    project = project_with(tmp_path / "projects", "p", f"{PACKAGE}\n")
    environments = Environments(tmp_path / "environments")
    requirements = requirements_of(project, "p")
    assert requirements is not None
    half = environments.path(requirements)
    (half / "bin").mkdir(parents=True)  # a killed engine's leftover: no ready marker
    built = environments.ensure(project, "p")
    assert built == half and (half / READY).is_file()


def test_a_package_that_does_not_exist_is_a_project_error_naming_it(tmp_path: Path) -> None:
    missing = "grader-no-such-package-4f1c9"
    projects = tmp_path / "projects"
    project_with(projects, "broken", f"{missing}==1.0\n")
    config = make_config(tmp_path, projects_dir=projects)

    async def scenario() -> tuple[dict[str, object], str]:
        async with engine_client(config) as client:
            sid = (await submit(client, "broken")).json()["id"]
            body = await wait_final(client, sid, seconds=120)
            debug = await client.get(f"submissions/{sid}/debug_log", params=q())
            return body, debug.text

    body, debug = asyncio.run(scenario())
    result = body["result"]
    assert isinstance(result, dict)
    assert result["status"]["code"] == StatusCode.PROJECT_ERROR
    assert missing in debug and "project error" in debug


def test_a_failed_build_is_not_tried_again_for_every_waiting_submission(tmp_path: Path) -> None:
    project = project_with(tmp_path / "projects", "p", "grader-no-such-package-4f1c9\n")
    uv, log = counting_uv(tmp_path)
    environments = Environments(tmp_path / "environments", uv=uv)
    for _ in range(3):
        with pytest.raises(EnvironmentBuildError, match="grader-no-such-package-4f1c9"):
            environments.ensure(project, "p")
    assert log.read_text().split().count("pip") == 1


@pytest.mark.parametrize(
    ("line", "complaint"),
    [("-e ../mylib", "line 2: -e is not supported"), ("-r other.txt", "line 2: -r is not")],
)
def test_requirements_the_engine_cannot_honour_are_refused_by_line(
    tmp_path: Path, line: str, complaint: str
) -> None:
    project = project_with(tmp_path / "projects", "p", f"{PACKAGE}\n{line}\n")
    with pytest.raises(EnvironmentBuildError, match=complaint):
        requirements_of(project, "p")


def test_a_project_without_requirements_runs_on_the_engines_python(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "projects", "plain", {"version": 2.1})
    environments = Environments(tmp_path / "environments")
    assert environments.ensure(folder, "plain") is None
    assert not (tmp_path / "environments").exists()


def grader(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grader", *args], capture_output=True, text=True, check=False
    )


def test_doctor_and_prepare_tell_and_build_each_projects_environment(tmp_path: Path) -> None:
    """doctor says the environment is not built and how to build it; `grader engine
    prepare COURSE` builds it; doctor then says it is ready."""
    course = write_course(tmp_path / "course", tmp_path / "repos")
    (course / "projects" / PROJECT / "requirements.txt").write_text(f"{PACKAGE}\n")
    before = grader("doctor", str(course))
    line = next(line for line in before.stdout.splitlines() if f"environment {PROJECT}" in line)
    assert "not built yet" in line and "grader engine prepare" in line
    prepared = grader("engine", "prepare", str(course))
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert prepared.stdout.startswith(f"{PROJECT}: ready (")
    after = grader("doctor", str(course))
    line = next(line for line in after.stdout.splitlines() if f"environment {PROJECT}" in line)
    assert line.split()[0] == "ok" and "ready" in line


def test_prepare_for_a_served_engine_reports_a_broken_project_and_builds_the_rest(
    tmp_path: Path,
) -> None:
    projects = tmp_path / "projects"
    project_with(projects, "good", f"{PACKAGE}\n")
    project_with(projects, "bad", "grader-no-such-package-4f1c9\n")
    make_project(projects, "plain", {"version": 2.1})
    done = grader("engine", "prepare", "--projects", str(projects), "--data", str(tmp_path / "d"))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert sorted(lines) == ["bad", "good", "plain"]
    assert "grader-no-such-package-4f1c9" in lines["bad"]
    assert lines["good"].startswith("ready (") and lines["plain"] == "the engine's own Python"


def test_grader_grade_runs_a_course_whose_project_needs_a_package(tmp_path: Path) -> None:
    """End to end: `grader grade` on the built-in engine, a project that imports six in
    the tests' process and in the student's: the solution that uses it passes both tests, a
    wrong one the public test only."""
    repos = tmp_path / "repos"
    wrong = SOLUTION.replace("sys.prefix]", "'elsewhere']")
    for student, solution in {"s01": SOLUTION, "s02": wrong}.items():
        commit(repos / student, {"solution.py": solution}, "solve", ON_TIME)
    course = write_course(tmp_path / "course", repos, students=("s01", "s02"))
    folder = course / "projects" / PROJECT
    shutil.rmtree(folder)
    project_with(course / "projects", PROJECT, f"{PACKAGE}\n")
    tests = folder / ".sphere-engine" / "tests" / "test_env.py"
    text = tests.read_text().replace("def test_the_tests_process", "def test_public_tests_process")
    tests.write_text(text.replace("def test_the_students_process", "def test_hidden_students"))
    done = grader("grade", str(course))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student_id"]: row for row in gradebook(course)}
    # the kit's rules: 3 points a public test, 4 a hidden one
    assert (rows["s01"]["score"], rows["s01"]["outcome"]) == ("7.0", "ok"), rows["s01"]
    assert (rows["s02"]["score"], rows["s02"]["outcome"]) == ("3.0", "fail"), rows["s02"]
