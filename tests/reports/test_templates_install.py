"""A real, non-editable install (the way .ci/run and the README install): its templates are
inside the package (grader/_templates), the grading harness both in the package and as a
top-level module, and it grades the sample course on its built-in engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPS = sysconfig.get_paths()["purelib"]  # this venv's site-packages: pytest, jinja2, ...

# Run inside the throwaway venv: render feedback for one student with the installed grader.
SCRIPT = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grader
from grader.config import Assignment
from grader.reports.feedback import write_feedback
from grader.records import Outcome, StudentOutcome
from grader.reports.templating import template_dir
from grader.roster import Student

assignment = Assignment("hw1", "Homework 1", "hw1", datetime(2026, 9, 19, tzinfo=UTC), "r", 100)
outcome = StudentOutcome(
    Student("ada"), assignment, "not graded", Outcome.REPOSITORY_UNAVAILABLE, "no bundle",
    None, None, None, timedelta(), None, None, None, "", "", None, 0,
)
write_feedback([outcome], Path(sys.argv[1]))
print(grader.__file__)
print(template_dir())
"""


@dataclass(frozen=True)
class Installed:
    """A throwaway venv holding nothing but the freshly built wheel of this checkout."""

    python: Path
    purelib: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp_path = tmp_path_factory.mktemp("install")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "hatch_build.py"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "grader", source / "grader", ignore=ignore)
    shutil.copytree(REPO / "templates", source / "templates", ignore=ignore)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # The build backend comes from this venv (the test extra), so no network is needed.
    _run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(wheels),
            str(source),
        ]
    )
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    wheel = next(wheels.glob("grader-*.whl"))
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    # Dependencies (jinja2, pydantic, ...) come from this venv, *after* the throwaway's own
    # site-packages, so `grader` itself can only be the freshly installed wheel.
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(_run([str(python), "-c", where]).strip())
    (purelib / "deps.pth").write_text(DEPS + "\n")
    return Installed(python, purelib)


@pytest.mark.slow
def test_non_editable_install_renders_feedback_from_packaged_templates(
    installed: Installed, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    lines = _run([str(installed.python), "-I", "-c", SCRIPT, str(out)], cwd=tmp_path).splitlines()
    assert Path(lines[0]).parent == installed.purelib / "grader"
    assert Path(lines[1]) == installed.purelib / "grader" / "_templates"
    feedback = (out / "feedback" / "ada.md").read_text()
    assert "Not graded: repository unavailable." in feedback
    assert (out / "feedback" / "ada.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.slow
def test_non_editable_install_ships_the_harness_in_the_package_and_as_a_module(
    installed: Installed, tmp_path: Path
) -> None:
    """The engine copies grader/harness.py into every sandbox; a stage run with the grader's
    Python imports grader_harness. Both are the same file, inside the installed wheel."""
    script = "import grader.harness, grader_harness; print(grader.harness.__file__); "
    script += "print(grader_harness.__file__)"
    package, module = _run([str(installed.python), "-I", "-c", script], cwd=tmp_path).split()
    assert Path(package) == installed.purelib / "grader" / "harness.py"
    assert Path(module) == installed.purelib / "grader_harness.py"
    assert Path(package).read_bytes() == Path(module).read_bytes()


@pytest.mark.slow
@pytest.mark.sandbox
def test_non_editable_install_grades_the_sample_course_on_its_built_in_engine(
    installed: Installed, tmp_path: Path
) -> None:
    """The README's first command, minus the checkout: the installed grader (run away from
    the source tree) grades every sample student on its own engine."""
    course = tmp_path / "sample_course"
    ignore = shutil.ignore_patterns(".grader", "out", "__pycache__")
    shutil.copytree(REPO / "sample_course", course, ignore=ignore)
    # The throwaway venv borrows pytest from this one (deps.pth); the sandbox shows a stage
    # only its Python's own prefixes, so the borrowed folder is named as readable too.
    for config in course.glob("projects/*/config.json"):
        project = json.loads(config.read_text())
        for scenario in project["scenarios"].values():
            scenario.setdefault("limits", {})["read_only_paths"] = [DEPS]
        config.write_text(json.dumps(project))
    command = [str(installed.python), "-I", "-m", "grader", "grade", str(course)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    # 1: hpatel never created her hw2 repository (on purpose); nobody else is left out.
    assert done.returncode == 1, done.stdout + done.stderr
    not_graded = [line for line in done.stdout.splitlines() if line.startswith("NOT GRADED")]
    assert not_graded == [
        "NOT GRADED hw2/hpatel: repository unavailable: repos/hw2/hpatel.bundle does not exist"
    ], done.stdout
    gradebook = (course / "out" / "hw1" / "gradebook.csv").read_text()
    assert "\namartin,Alice Martin,100.0,100.0,graded," in gradebook, gradebook


def _run(command: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout
