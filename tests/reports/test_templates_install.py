"""A real, non-editable install finds its templates inside the package (grader/_templates)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

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


@pytest.mark.slow
def test_non_editable_install_renders_feedback_from_packaged_templates(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
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
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = tmp_path / "out"
    lines = _run([str(python), "-I", "-c", SCRIPT, str(out)], cwd=tmp_path).splitlines()
    assert Path(lines[0]).parent == purelib / "grader"
    assert Path(lines[1]) == purelib / "grader" / "_templates"
    feedback = (out / "feedback" / "ada.md").read_text()
    assert "Not graded: repository unavailable." in feedback
    assert (out / "feedback" / "ada.html").read_text().startswith("<!DOCTYPE html>")


def _run(command: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout
