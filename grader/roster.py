"""Roster files -> ``Student`` records (native CSV, GitHub Classroom, Classroom 50)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
