"""How far a project's grade can be trusted, read from its files (``grader doctor``).

The grade is only as honest as the process that writes the test report. A project whose
tests import the student's module (or run the student's program) inside the pytest
process that writes the report lets a student forge the grade; ``grader_harness`` keeps the
student's code out of that process. These checks read the project's configuration and its
Python files; they never run anything.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

from grader.engine.spec import PRIVATE_FOLDER

MAX_FILE_BYTES = 1_000_000
HARNESS = "grader_harness"
# A stage command that runs pytest (python -m pytest, pytest, py.test), not via the harness
PYTEST = re.compile(r"(^|[\s;&|/])(py\.test|pytest)(\s|$)|-m\s+pytest\b")
SAFE_PATH_FLAGS = re.compile(r"\spython3?(\.\d+)?\s+(-\w*[PI]\w*\s+)+-m\s+grader_harness\b")
IN_PROCESS_CALLS = {
    "import_module",
    "__import__",
    "exec_module",
    "run_path",
    "spec_from_file_location",
}
PROGRAM_CALLS = {"run", "Popen", "call", "check_call", "check_output", "system", "popen"}


def audit_project(directory: Path) -> list[str]:
    """Warnings about ``directory`` (a project folder), each naming the file at fault."""
    config = directory / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # the config's own problems are reported elsewhere
    commands = list(_commands(data))
    runs_pytest = [c for c in commands if PYTEST.search(c) and HARNESS not in c]
    via_harness = [c for c in commands if f"-m {HARNESS}" in c]
    warnings = []
    for command in via_harness:
        if not SAFE_PATH_FLAGS.search(f" {command}"):
            warnings.append(
                f"{config}: {command!r} runs grader_harness without -P: a student's file named "
                "grader_harness.py or pytest.py in the workspace would be run instead"
            )
    if runs_pytest:
        for path, why in _in_process(directory):
            warnings.append(
                f"{path}: the tests {why} in the pytest process that writes the report, so "
                "the student's code can forge its own grade: call it through grader_harness "
                "(README, 'Trusted grading')"
            )
    if not (directory / PRIVATE_FOLDER).is_dir() and commands:
        warnings.append(
            f"{directory}: no {PRIVATE_FOLDER}/ folder: the instructor's files are not hidden "
            "from the student's code (put them in .sphere-engine/, or list them in the "
            "scenario's limits.private_paths)"
        )
    return warnings


def _commands(data: object) -> Iterator[str]:
    scenarios = data.get("scenarios", {}) if isinstance(data, dict) else {}
    for scenario in scenarios.values() if isinstance(scenarios, dict) else ():
        stages = scenario.get("stages", {}) if isinstance(scenario, dict) else {}
        for name, stage in stages.items() if isinstance(stages, dict) else ():
            command = stage.get("command") if isinstance(stage, dict) else None
            if name != "build" and isinstance(command, str):
                yield command


def _in_process(directory: Path) -> Iterator[tuple[Path, str]]:
    """Python files of the project that bring student code into their own process."""
    for path in sorted(directory.rglob("*.py")):
        if path.name == f"{HARNESS}.py" or not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        why = _what_it_does(tree)
        if why is not None:
            yield path, why


def _what_it_does(tree: ast.AST) -> str | None:
    uses_harness = any(
        isinstance(node, (ast.Import, ast.ImportFrom)) and _imports(node, HARNESS)
        for node in ast.walk(tree)
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _called(node)
            if name in IN_PROCESS_CALLS:
                return f"import student code ({name})"
            if name in PROGRAM_CALLS and not uses_harness and _mentions_subprocess(node):
                return f"run the student's program ({name})"
        if isinstance(node, (ast.Import, ast.ImportFrom)) and _imports(node, "solution"):
            return "import the student's module"
    return None


def _imports(node: ast.Import | ast.ImportFrom, name: str) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == name
    return any(alias.name.split(".")[0] == name for alias in node.names)


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _mentions_subprocess(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and (func.value.id in ("subprocess", "os"))
    )
