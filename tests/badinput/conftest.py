"""A course graded once per session, copied (state and outputs too) by every bad-input test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from tests.support.course_kit import make_course

NO_ENGINE = {"SPHERE_ENGINE_URL": None, "SPHERE_ENGINE_TOKEN": None}  # the in-process engine


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dozen-student course graded once (s07 has no repository: exit 1)."""
    course = make_course(tmp_path_factory.mktemp("graded"))
    result = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)
    assert result.exit_code == 1, result.output
    return course


def copy_of(graded: Path, tmp_path: Path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(graded, course, symlinks=True)
    return course


def outputs(course: Path) -> dict[str, bytes]:
    """Every output file of the course by its path under out/."""
    out = course / "out"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
