"""What an engine project's own files say: their text, and the tests they define.

A local project folder (``projects/<id>/``) holds the instructor's files. Two readers
need them beside the engine: the scrubber, which keeps the hidden ones away from
students (``grader.reports.hidden``), and the integrity flags, which compare a tests
report with the tests the project defines (``grader.integrity``). ``read_project_files``
is the only I/O; ``defined_tests`` is pure.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 1_000_000  # larger files are data, not tests: not read
MAX_FILES = 2_000


@dataclass(frozen=True)
class DefinedTest:
    """One test a Python file defines: its name and the lines it spans (1-based, inclusive).

    ``first`` includes the decorators; a method of a ``Test*`` class is its own entry.
    """

    __test__ = False  # not a pytest class, despite the name

    name: str
    first: int
    last: int


def read_project_files(root: Path) -> dict[str, str]:
    """Every readable text file under ``root``: relative POSIX path -> text.

    Links, binary files (a NUL byte) and files over ``MAX_FILE_BYTES`` are left out; a
    missing folder (a project that lives only on the cloud service) is no files.
    """
    if not root.is_dir():
        return {}
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if len(files) >= MAX_FILES:
            break
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" not in data:
            files[path.relative_to(root).as_posix()] = data.decode("utf-8", errors="replace")
    return files


def defined_tests(path: str, text: str) -> tuple[DefinedTest, ...]:
    """The tests a Python file defines (functions ``test*``, methods of ``Test*`` classes).

    Other files, and Python that does not parse, define none that can be told apart.
    """
    if not path.endswith(".py"):
        return ()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return ()
    found: list[DefinedTest] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_test(node.name):
            found.append(_span(node))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found.extend(
                _span(item)
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _is_test(item.name)
            )
    return tuple(found)


def defined_test_names(files: Mapping[str, str]) -> frozenset[str]:
    """The names of every test the project's Python files define."""
    return frozenset(t.name for path, text in files.items() for t in defined_tests(path, text))


def _is_test(name: str) -> bool:
    return name.startswith("test")


def _span(node: ast.FunctionDef | ast.AsyncFunctionDef) -> DefinedTest:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return DefinedTest(node.name, first, node.end_lineno or node.lineno)
