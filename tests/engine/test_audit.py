"""grader doctor's reading of a project: where the student's code could reach the grade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.engine.audit import audit_project
from grader.engine.sandbox.detect import separation

REPO = Path(__file__).resolve().parents[2]
HARNESS_RUN = "python3 -P -m grader_harness pytest -q .sphere-engine/tests"
PLAIN_RUN = "python3 -m pytest .sphere-engine/tests --junitxml=$SE_PATH_UNIT_TESTS_REPORT"


def project(tmp_path: Path, run: str, files: dict[str, str]) -> Path:
    folder = tmp_path / "project"
    stages = {"run": {"command": run}, "test": {"command": "se_utils_cli evaluate"}}
    config = {"version": 2.1, "scenarios": {"grade": {"stages": stages}}}
    (folder / ".sphere-engine" / "tests").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("assignment", ["hw1", "hw2"])
def test_the_sample_projects_raise_no_warning(assignment: str) -> None:
    assert audit_project(REPO / "sample_course" / "projects" / assignment) == []


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("from solution import add\n", "import the student's module"),
        ("import importlib\nmod = importlib.import_module('solution')\n", "import_module"),
        ("import subprocess\nsubprocess.run(['./prog'])\n", "run the student's program"),
    ],
)
def test_tests_that_run_student_code_in_process_are_named(
    tmp_path: Path, source: str, why: str
) -> None:
    folder = project(tmp_path, PLAIN_RUN, {".sphere-engine/tests/test_x.py": source})
    warnings = audit_project(folder)
    assert len(warnings) == 1
    assert str(folder / ".sphere-engine/tests/test_x.py") in warnings[0] and why in warnings[0]
    assert "grader_harness" in warnings[0]


def test_tests_through_the_harness_are_trusted(tmp_path: Path) -> None:
    tests = "import grader_harness as h\nimport subprocess\nsolution = h.module('solution')\n"
    folder = project(tmp_path, HARNESS_RUN, {".sphere-engine/tests/test_x.py": tests})
    assert audit_project(folder) == []


def test_the_harness_without_safe_path_is_named(tmp_path: Path) -> None:
    run = "python3 -m grader_harness pytest .sphere-engine/tests"
    folder = project(tmp_path, run, {".sphere-engine/tests/test_x.py": "def test(): pass\n"})
    [warning] = audit_project(folder)
    assert "without -P" in warning and "grader_harness.py" in warning


def test_a_project_without_its_private_folder_is_named(tmp_path: Path) -> None:
    folder = project(tmp_path, HARNESS_RUN, {})
    (folder / ".sphere-engine" / "tests").rmdir()
    (folder / ".sphere-engine").rmdir()
    [warning] = audit_project(folder)
    assert "no .sphere-engine/ folder" in warning and "private_paths" in warning


@pytest.mark.parametrize(
    ("kind", "root", "holds", "words"),
    [
        ("bubblewrap", True, True, "a uid of its own"),
        ("unshare", True, True, "a uid of its own"),
        ("bubblewrap", False, True, "user namespace of its own"),
        ("rlimits", True, False, "sees this machine's files"),
        ("rlimits", False, False, "can read the tests and write the report"),
    ],
)
def test_doctor_says_which_guarantees_hold(kind: str, root: bool, holds: bool, words: str) -> None:
    verdict, text = separation(kind, root=root)  # type: ignore[arg-type]
    assert verdict is holds and words in text
