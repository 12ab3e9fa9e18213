"""What a student must never read: the hidden tests' names and the lines of their files.

``Secrets.of(project)`` collects, from a project folder's ``.sphere-engine/tests``, the
names of the tests in ``test_hidden*.py`` and every line of those files worth keeping
secret (stripped, at least ``MIN_LINE`` characters, and not also in a file students may
see: a public test file or a conftest). ``Secrets.found_in(text)`` lists those that
appear in a text. Plain substring matching, on purpose: this is the test's own simple
idea of a leak, independent of the grader's scrubber.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MIN_LINE = 12  # characters of a stripped line: shorter ones (`return x`) say nothing


@dataclass(frozen=True)
class Secrets:
    names: frozenset[str]
    lines: frozenset[str]

    @classmethod
    def of(cls, project: Path) -> Secrets:
        tests = project / ".sphere-engine" / "tests"
        hidden = sorted(tests.glob("test_hidden*.py"))
        visible = [p for p in tests.rglob("*.py") if p not in hidden]
        seen = {line.strip() for path in visible for line in path.read_text().splitlines()}
        names: set[str] = set()
        lines: set[str] = set()
        for path in hidden:
            text = path.read_text()
            names |= {
                node.name
                for node in ast.walk(ast.parse(text))
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
            }
            lines |= {
                line.strip()
                for line in text.splitlines()
                if len(line.strip()) >= MIN_LINE and line.strip() not in seen
            }
        return cls(frozenset(names), frozenset(lines))

    def found_in(self, text: str) -> list[str]:
        """The hidden names and lines that ``text`` contains."""
        return sorted(s for s in self.names | self.lines if s in text)


def student_files(out: Path) -> Iterable[Path]:
    """Everything under an assignment's output folder that students read: feedback, the
    manifests, the LMS files and Gradescope results (never ``instructor/``)."""
    instructor_only = ("dashboard.html", "gradebook.csv", "history.csv")
    for path in sorted(out.rglob("*")):
        parts = path.relative_to(out).parts
        if path.is_file() and "instructor" not in parts and path.name not in instructor_only:
            yield path
