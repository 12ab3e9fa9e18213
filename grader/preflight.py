"""Checks before a run: whatever can be known wrong is refused before anything is submitted.

Each check raises ConfigError (exit 2) naming the file and key or line at fault, so a
typo in the course folder costs a message, not a night of "not graded" rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from grader.config import COURSE_FILE, Course
from grader.connect import EngineChoice
from grader.errors import ConfigError, RosterError
from grader.roster import Student


def default_out_root(course: Course) -> Path:
    return course.root / "out"


def check_roster(course: Course, roster: Sequence[Student], chosen: Sequence[str]) -> None:
    """The roster has students, and every ``-s STUDENT`` is one of them."""
    if not roster:
        raise RosterError(
            "no students: the roster has a header but no rows", file=str(course.roster)
        )
    known = {s.student_id for s in roster}
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ConfigError(f"not on the roster: {', '.join(unknown)}", file=str(course.roster))


def check_extensions(
    course: Course, assignment_ids: Sequence[str], roster: Sequence[Student]
) -> None:
    """Every extension names a roster student: a misspelt id would silently grant nothing."""
    known = {s.student_id for s in roster}
    for assignment_id in assignment_ids:
        for student_id in course.assignment(assignment_id).extensions:
            if student_id not in known:
                raise ConfigError(
                    f"extension for {student_id!r}, who is not on the roster "
                    f"({course.roster.name}); check the spelling",
                    file=str(course.root / COURSE_FILE),
                    where=f"assignments.{assignment_id}.extensions.{student_id}",
                )


def check_projects(course: Course, engine: EngineChoice, assignment_ids: Sequence[str]) -> None:
    """The built-in engine can only run projects whose folder is in the course.

    Only the folder is checked: a broken ``config.json`` inside it is the engine's to
    report (status 22, "project error"), as the cloud service would.
    """
    if not engine.is_local:
        return  # a remote engine's projects live on the service; it answers for them
    for assignment_id in assignment_ids:
        project = course.assignment(assignment_id).project
        folder = course.projects_dir / project
        if not folder.is_dir():
            raise ConfigError(
                f"project {project!r} has no folder {_shown(folder, course)}/: the built-in "
                "engine runs projects/<id>/config.json and the instructor's files beside it",
                file=str(course.root / COURSE_FILE),
                where=f"assignments.{assignment_id}.project",
            )


def prepare_out_root(out_root: Path) -> None:
    """Create the output folder now, so a bad one is refused before grading, not after."""
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot be the output folder: {exc.strerror or exc}", file=str(out_root)
        ) from None


def _shown(path: Path, course: Course) -> str:
    try:
        return str(path.relative_to(course.root))
    except ValueError:
        return str(path)
