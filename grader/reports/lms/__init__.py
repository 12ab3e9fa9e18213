"""LMS import files: one module per LMS, each a pure writer of bytes.

Every writer takes the outcomes (roster order) and the ``Assignment`` and returns an
``LmsExport``: the files to write, the row count and warnings for the instructor. It
raises ``ExportError`` naming every student the LMS could not match, and
``ConfigError`` for an LMS setting it cannot use. ``grader.exporting`` writes the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from grader.config import Assignment
from grader.errors import ConfigError
from grader.records import StudentOutcome
from grader.reports.lms.blackboard import blackboard_csv
from grader.reports.lms.brightspace import brightspace_csv
from grader.reports.lms.canvas import canvas_csv
from grader.reports.lms.gradescope import gradescope_results
from grader.reports.lms.moodle import moodle_csv
from grader.reports.lms.sheet import LmsExport

LmsWriter = Callable[[Sequence[StudentOutcome], Assignment], LmsExport]

WRITERS: Mapping[str, LmsWriter] = {
    "canvas": canvas_csv,
    "moodle": moodle_csv,
    "blackboard": blackboard_csv,
    "brightspace": brightspace_csv,
    "gradescope": gradescope_results,
}
LMS_CHOICES: tuple[str, ...] = tuple(WRITERS)


def lms_writer(lms: str) -> LmsWriter:
    """The writer for ``lms``; an unknown name is a ``ConfigError`` naming the choices."""
    try:
        return WRITERS[lms.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"unknown LMS {lms!r} (choose one of: {', '.join(LMS_CHOICES)})"
        ) from None


__all__ = [
    "LMS_CHOICES",
    "WRITERS",
    "LmsExport",
    "LmsWriter",
    "blackboard_csv",
    "brightspace_csv",
    "canvas_csv",
    "gradescope_results",
    "lms_writer",
    "moodle_csv",
]
