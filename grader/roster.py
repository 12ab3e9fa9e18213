"""Roster files -> ``Student`` records (native CSV, GitHub Classroom, Classroom 50).

The format is told by the header, so a roster is read exactly as it was downloaded:

* native (DESIGN.md): ``student_id`` (required, unique), ``name``, ``email``,
  ``github_username``, ``section``, ``sis_user_id``, ``sis_login_id``, ``canvas_id``, ``repo``;
* GitHub Classroom's export: ``identifier,github_username,github_id,name`` (every field
  quoted); ``identifier`` becomes the student id;
* Classroom 50's ``roster.csv``/``students.csv``:
  ``username,first_name,last_name,email,section[,github_id][,role]`` (more trailing columns
  are tolerated); ``username`` is the GitHub login and becomes the student id.

A problem with the whole file (unreadable, no id column, a duplicate id) is a
``RosterError`` naming ``file:line``. A problem with one row (an empty id, an id that
cannot be a file name, since ``feedback/<student_id>.md`` is written) keeps the student
with ``problem`` set, and everyone else is graded.
"""

from __future__ import annotations

import csv
import os
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from grader.errors import RosterError, SourceError

NATIVE_COLUMNS = (
    "student_id",
    "name",
    "email",
    "github_username",
    "section",
    "sis_user_id",
    "sis_login_id",
    "canvas_id",
    "repo",
)
MAX_ID_LENGTH = 100  # ids become file names; 100 leaves room for suffixes under NAME_MAX
_UNSAFE_ID_CHARS = re.compile(r'[/\\<>:"|?*]')
_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Student:
    """One roster row. ``problem`` says why the row cannot be graded (the run goes on)."""

    student_id: str
    name: str = ""
    email: str = ""
    github_username: str = ""
    section: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    canvas_id: str = ""
    repo: str = ""  # overrides the assignment's repo template when set
    line: int = 0  # line in the roster file, for messages
    problem: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)  # every column, for templates


@dataclass(frozen=True)
class _Format:
    """How one roster flavour names its columns."""

    label: str
    id_column: str

    def fields(self, row: Mapping[str, str]) -> dict[str, str]:
        """The native fields of one row (``student_id``, ``name``, ...)."""
        if self.label == "GitHub Classroom":
            return {
                "student_id": row.get("identifier", ""),
                "github_username": row.get("github_username", ""),
                "name": row.get("name", ""),
            }
        if self.label == "Classroom 50":
            full = f"{row.get('first_name', '')} {row.get('last_name', '')}".strip()
            return {
                "student_id": row.get("username", ""),
                "github_username": row.get("username", ""),
                "name": full,
                "email": row.get("email", ""),
                "section": row.get("section", ""),
            }
        return {column: row.get(column, "") for column in NATIVE_COLUMNS}


NATIVE = _Format("native", "student_id")
GITHUB_CLASSROOM = _Format("GitHub Classroom", "identifier")
CLASSROOM_50 = _Format("Classroom 50", "username")


def load_roster(path: Path) -> list[Student]:
    """Read the roster file at ``path``; an unreadable file is a ``RosterError`` naming it."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fp:
            return read_roster(fp, source=str(path))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RosterError(f"cannot read the roster: {reason}", file=str(path)) from exc


def read_roster(fp: TextIO, *, source: str) -> list[Student]:
    """Parse a roster stream (any supported format); ``source`` names it in messages."""
    rows = _rows(fp, source)
    header_line, header = next(rows, (0, []))
    if not any(header):
        raise RosterError("empty roster: the first line must be a header", file=source)
    columns = _header(header, source, header_line)
    flavour = _detect(columns, source, header_line)
    students: list[Student] = []
    seen: dict[str, int] = {}  # casefolded id -> line; ids differing in case collide as files
    for line, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines and spreadsheet leftovers such as ",,,"
        student = _student(flavour, columns, cells, line)
        key = student.student_id.casefold()
        if student.student_id and key in seen:
            raise RosterError(
                f"duplicate student id {student.student_id!r} (already on line {seen[key]}; "
                "ids must differ in more than letter case)",
                file=source,
                where=str(line),
            )
        if student.student_id:
            seen[key] = line
        students.append(student)
    return students


def _rows(fp: TextIO, source: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, cells) for every record, with read errors made RosterErrors."""
    reader = csv.reader(_without_bom(fp), strict=True, skipinitialspace=True)
    previous = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = str(previous + 1)
            raise RosterError(f"not valid CSV: {exc}", file=source, where=where) from exc
        except UnicodeDecodeError as exc:
            raise RosterError(
                "not UTF-8 text (save the roster as 'CSV UTF-8')",
                file=source,
                where=str(previous + 1),
            ) from exc
        start, previous = previous + 1, reader.line_num
        yield start, cells


def _without_bom(fp: TextIO) -> Iterator[str]:
    """The stream's lines; a UTF-8 BOM (Excel's "CSV UTF-8") dropped from the first one."""
    first = True
    for line in fp:
        yield line.removeprefix("\ufeff") if first else line
        first = False


def _header(cells: list[str], source: str, line: int) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise RosterError(f"column {name!r} appears twice", file=source, where=str(line))
        seen.add(name)
    return names


def _detect(columns: list[str], source: str, line: int) -> _Format:
    present = set(columns)
    if "student_id" in present:
        return NATIVE
    if {"identifier", "github_username"} <= present:
        return GITHUB_CLASSROOM
    if "username" in present and present & {"first_name", "last_name", "github_id"}:
        return CLASSROOM_50
    raise RosterError(
        "missing required column 'student_id' (a native roster needs it; GitHub Classroom "
        "exports start with identifier,github_username and Classroom 50 rosters with "
        f"username,first_name,last_name); found: {', '.join(c for c in columns if c) or 'none'}",
        file=source,
        where=str(line),
    )


def _student(flavour: _Format, columns: list[str], cells: list[str], line: int) -> Student:
    values = [cell.strip() for cell in cells]
    row = {name: value for name, value in zip(columns, values, strict=False) if name}
    fields = flavour.fields(row)
    problem = id_problem(fields["student_id"], column=flavour.id_column)
    extra = [value for value in values[len(columns) :] if value]
    if problem is None and extra:
        problem = f"{len(values)} fields but the header has {len(columns)} columns"
    return Student(
        student_id=fields["student_id"],
        name=fields.get("name", ""),
        email=fields.get("email", ""),
        github_username=fields.get("github_username", ""),
        section=fields.get("section", ""),
        sis_user_id=fields.get("sis_user_id", ""),
        sis_login_id=fields.get("sis_login_id", ""),
        canvas_id=fields.get("canvas_id", ""),
        repo=fields.get("repo", ""),
        line=line,
        problem=problem,
        columns={**row, **fields},
    )


def id_problem(student_id: str, *, column: str = "student_id") -> str | None:
    """Why ``student_id`` cannot be used as a file name, or None when it can."""
    if not student_id:
        return f"empty {column}"
    if len(student_id) > MAX_ID_LENGTH:
        return f"{column} is longer than {MAX_ID_LENGTH} characters"
    bad = _UNSAFE_ID_CHARS.search(student_id)
    if bad:
        return f"{column} {student_id!r} contains '{bad.group()}', which cannot be in a file name"
    if not student_id.isprintable():  # control, format and odd space characters
        return f"{column} {student_id!r} contains characters that cannot be shown"
    if student_id.startswith(".") or student_id.endswith((".", " ")):
        return f"{column} {student_id!r} cannot start with '.' or end with '.' or a space"
    if _WINDOWS_RESERVED.fullmatch(student_id):
        return f"{column} {student_id!r} is a reserved device name on Windows"
    return None


def is_remote(repo: str) -> bool:
    """True for URLs and scp-like ``host:path``; False for local paths (git's own rule)."""
    if _URL.match(repo):
        return True
    colon = repo.find(":")
    return colon > 0 and "/" not in repo[:colon]


def repo_for(student: Student, template: str, *, base: Path) -> str:
    """The repository to read for ``student``: the roster's ``repo`` or the filled template.

    Relative paths are resolved against ``base`` (the course folder); URLs are kept.
    """
    raw = student.repo or _fill(template, student)
    if is_remote(raw):
        return raw
    return os.path.normpath(base / Path(raw).expanduser())


def _fill(template: str, student: Student) -> str:
    parts: list[str] = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is None:
            continue
        if conversion or not name.isidentifier():
            raise SourceError(
                f"repo template {template!r}: {{{name}}} must be a plain roster column name",
                student_id=student.student_id,
            )
        value = _column(student, name)
        if not value:
            raise SourceError(
                f"repo template {template!r} needs {name!r}, which the roster does not give "
                f"for student {student.student_id!r} (line {student.line})",
                student_id=student.student_id,
            )
        if "/" in value or "\\" in value or value in (".", "..") or value.startswith("-"):
            raise SourceError(
                f"roster value {name}={value!r} of student {student.student_id!r} "
                "cannot be put into a repository path",
                student_id=student.student_id,
            )
        parts.append(format(value, spec) if spec else value)
    return "".join(parts)


def _column(student: Student, name: str) -> str:
    if name in student.columns:
        return student.columns[name]
    value = getattr(student, name, "") if name in NATIVE_COLUMNS else ""
    return value if isinstance(value, str) else ""
