"""LMS import files: one module per LMS, each a pure writer of bytes.

Every writer takes the students' views (``StudentView``, roster order: scrubbed of hidden
material, no instructor-only notes or flags) and the ``Assignment`` and returns an
``LmsExport``: the files to write, the row count and warnings for the instructor. It
raises ``ExportError`` naming every student the LMS could not match, and
``ConfigError`` for an LMS setting it cannot use. ``grader.exporting`` writes the files.

Each module declares its ``FORMAT`` (name, writer, the course.toml keys it reads, the
export flags it takes); a new format is a module and one line in ``FORMATS``.
"""

from __future__ import annotations

from collections.abc import Mapping

from grader.errors import ConfigError
from grader.reports.lms import blackboard, brightspace, canvas, gradescope, moodle
from grader.reports.lms.sheet import LmsExport, LmsFormat, LmsOption, LmsWriter

FORMATS: Mapping[str, LmsFormat] = {
    f.name: f
    for f in (
        canvas.FORMAT,
        moodle.FORMAT,
        blackboard.FORMAT,
        brightspace.FORMAT,
        gradescope.FORMAT,
    )
}
LMS_CHOICES: tuple[str, ...] = tuple(FORMATS)
LMS_SETTINGS: tuple[str, ...] = tuple(key for f in FORMATS.values() for key in f.settings)
"""Every key any format reads under ``[assignments.<id>.lms]``."""
LMS_OPTIONS: tuple[LmsOption, ...] = tuple(o for f in FORMATS.values() for o in f.options)


def lms_format(lms: str) -> LmsFormat:
    """The format called ``lms``; an unknown name is a ``ConfigError`` naming the choices."""
    try:
        return FORMATS[lms.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"unknown LMS {lms!r} (choose one of: {', '.join(LMS_CHOICES)})"
        ) from None


__all__ = [
    "FORMATS",
    "LMS_CHOICES",
    "LMS_OPTIONS",
    "LMS_SETTINGS",
    "LmsExport",
    "LmsFormat",
    "LmsOption",
    "LmsWriter",
    "lms_format",
]
