"""`grader export`: LMS import files for one assignment, from stored grades only.

Nothing runs: the latest outcome of every roster student is read from SQLite (through
``grader.outputs.stored_outcomes``, the same records `grader report` renders), turned
into what the student may see (``student_view``: hidden material scrubbed, no
instructor-only notes or flags), handed to the LMS's writer, and the files it returns
are written under ``OUT/<assignment>/`` (``<lms>.csv``, or ``results/<student_id>.json``
for gradescope). Files are replaced atomically, so an interrupted export never leaves
half a CSV for an import to read.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from grader.config import load_course
from grader.errors import ConfigError, ExportError
from grader.outputs import assignment_hidden_material, stored_outcomes
from grader.preflight import default_out_root
from grader.reports.lms import LMS_OPTIONS, LmsExport, LmsWriter, lms_format
from grader.reports.lms.sheet import graded
from grader.reports.student_view import student_views
from grader.roster import load_roster
from grader.state import STATE_FILE, open_state


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: files, student rows, and what the instructor should know."""

    lms: str
    assignment: str
    paths: tuple[Path, ...]
    rows: int
    warnings: tuple[str, ...]
    removed: tuple[Path, ...] = ()  # stale files of students no longer graded


def export(
    course_dir: Path,
    assignment_id: str,
    lms: str,
    *,
    out_dir: Path | None = None,
    **options: bool,
) -> ExportResult:
    """Write the ``lms`` import file(s) of one assignment from the stored grades.

    ``options`` are the export flags the format declares (``tabs`` for Blackboard).
    """
    name = lms.strip().lower()
    writer = choose_writer(name, **options)
    course = load_course(course_dir)
    assignment = course.assignment(assignment_id)
    roster = load_roster(course.roster)
    state_file = course.state_dir / STATE_FILE
    if not state_file.is_file():
        raise ExportError(
            f"nothing to export for {assignment.id}: no grades are stored in {state_file} "
            "(run `grader grade` first)"
        )
    with open_state(course.state_dir) as state:
        stored = stored_outcomes(state, assignment, roster, course=course)
    # identities come from the roster as it is now: a canvas_id added after grading counts
    outcomes = [replace(o, student=s) for o, s in zip(stored, roster, strict=True)]
    if not any(graded(o) for o in outcomes):
        raise ExportError(
            f"nothing to export for {assignment.id}: no student is graded yet "
            "(run `grader grade` first)"
        )
    material = assignment_hidden_material(course, assignment, outcomes)
    exported = writer(student_views(outcomes, material), assignment)
    directory = (out_dir or default_out_root(course)) / assignment.id
    paths = write_export(exported, directory)
    removed = remove_stale(exported, directory)
    return ExportResult(name, assignment.id, paths, exported.rows, exported.warnings, removed)


def choose_writer(lms: str, **options: bool) -> LmsWriter:
    """The writer for ``lms`` with the options set; an option of another format is refused."""
    chosen = lms_format(lms)
    wanted = {name: True for name, value in options.items() if value}
    if not wanted:
        return chosen.write
    accepted = {option.name for option in chosen.options}
    for option in LMS_OPTIONS:
        if option.name in wanted and option.name not in accepted:
            raise ConfigError(option.refusal.format(lms=lms))
    return partial(chosen.write, **wanted)


def write_export(exported: LmsExport, directory: Path) -> tuple[Path, ...]:
    """Write every file of an export under ``directory``, each replaced atomically."""
    paths = []
    for relative, content in exported.files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(path, content)
        paths.append(path)
    return tuple(paths)


def remove_stale(exported: LmsExport, directory: Path) -> tuple[Path, ...]:
    """Delete the files an earlier export wrote for students who are not graded now."""
    removed = []
    for relative in exported.stale:
        path = directory / relative
        if path.is_file():
            path.unlink()
            removed.append(path)
    return tuple(removed)


def _replace_atomically(path: Path, content: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as fp:
            fp.write(content)
        Path(temporary).chmod(0o644)  # mkstemp's 0600 would surprise whoever shares OUT
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
