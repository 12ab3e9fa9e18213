"""grader_harness end to end: instructor tests in the real sandbox, the student's code in a
sandbox of its own started through the broker (and, without a broker, as a child)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from runner_kit import (
    NAMESPACED,
    SMALL,
    make_spec,
    needs_sandbox,
    processes_with,
    report,
    sandbox_processes,
    stages,
    text,
)

from grader.api.models import StatusCode
from grader.engine.evaluate import parse_junit
from grader.engine.runner import run_submission
from grader.engine.runner.workspace import prepare_cell
from grader.engine.sandbox import INNER_UID, Cell, SandboxInfo, run_stage, stage_env
from grader.engine.spec import RunSpec

pytestmark = [pytest.mark.sandbox, needs_sandbox]

HARNESS_RUN = "python3 -P -m grader_harness pytest -q .sphere-engine/tests"
INI = "[pytest]\ngrader_call_timeout = 1\ngrader_test_timeout = 2.5\n"

SOLUTION = """
import collections, os, subprocess, sys, time

def add(a, b):
    return a + b

def words(text):
    return collections.Counter(text.split())

def boom():
    raise KeyError("missing " + "key")

def spin():
    while True:
        pass

def echo():
    line = input()
    print("got", line)
    print("to stderr", file=sys.stderr)
    os.write(1, b"raw\\n")
    return len(line)

class Stack:
    def __init__(self):
        self.items = []
    def push(self, item):
        self.items.append(item)
    def pop(self):
        return self.items.pop()
    def __len__(self):
        return len(self.items)

def sort_in_place(values):
    values.sort()

def die():
    os._exit(3)

def whoami():
    return {
        "uid": os.getuid(),
        "tests": os.path.exists(".sphere-engine/tests/test_api.py"),
        "report": os.environ.get("SE_PATH_UNIT_TESTS_REPORT"),
        "pid1": open("/proc/1/cmdline", "rb").read(),
    }
"""

TESTS = """
import grader_harness as harness
import pytest

solution = harness.module("solution")

def test_plain_data_in_and_out():
    assert solution.add(2, 3) == 5
    assert solution.add([1], [2]) == [1, 2]
    assert solution.words("a b a") == {"a": 2, "b": 1}

def test_exceptions_come_back_as_data():
    with harness.raises("LookupError", match="missing key") as caught:
        solution.boom()
    assert caught["error"].type_name == "KeyError"

def test_an_unexpected_exception_fails_the_test():
    solution.boom()

def test_stdin_and_stdout_per_call():
    call = solution.echo.run(stdin="hello\\n")
    assert (call.value, call.stdout, call.stderr) == (5, "got hello\\nraw\\n", "to stderr\\n")

def test_objects_stay_in_the_students_process():
    stack = solution.Stack()
    stack.push(1)
    stack.push("two")
    assert len(stack) == 2 and stack.pop() == "two" and stack.items.get() == [1]

def test_arguments_after_the_call():
    assert solution.sort_in_place.run([3, 1, 2]).args == ([1, 2, 3],)

def test_a_hang_fails_this_test():
    solution.spin()

def test_the_next_test_gets_a_fresh_process():
    assert solution.add(1, 1) == 2

def test_many_short_hangs_hit_the_tests_limit():
    for _ in range(5):
        with pytest.raises(harness.StudentTimeout):
            solution.spin()

def test_a_dead_process_fails_the_call_and_is_replaced():
    with pytest.raises(harness.StudentError, match="exited with status 3"):
        solution.die()
    assert solution.add(2, 2) == 4

def test_a_program_and_what_it_leaves_behind():
    script = "cat; echo oops >&2; (sleep 300; echo late) & exit 4"
    done = harness.run(["/bin/sh", "-c", script], stdin="in")
    assert (done.stdout, done.stderr, done.returncode) == ("in", "oops\\n", 4)

def test_a_program_that_hangs():
    harness.run(["/bin/sh", "-c", "sleep 30"], timeout=0.5)

def test_the_student_side_sees_nothing_of_ours():
    seen = solution.whoami()
    assert seen["tests"] is False and seen["report"] is None
    # pid 1 shows how the student's process was started, never the host's folders
    assert b"work/home" not in seen["pid1"] and b"--bind" not in seen["pid1"], seen["pid1"]
"""

EXPECTED = {
    "test_plain_data_in_and_out": "ok",
    "test_exceptions_come_back_as_data": "ok",
    "test_an_unexpected_exception_fails_the_test": "failure",
    "test_stdin_and_stdout_per_call": "ok",
    "test_objects_stay_in_the_students_process": "ok",
    "test_arguments_after_the_call": "ok",
    "test_a_hang_fails_this_test": "failure",
    "test_the_next_test_gets_a_fresh_process": "ok",
    "test_many_short_hangs_hit_the_tests_limit": "failure",
    "test_a_dead_process_fails_the_call_and_is_replaced": "ok",
    "test_a_program_and_what_it_leaves_behind": "ok",
    "test_a_program_that_hangs": "failure",
    "test_the_student_side_sees_nothing_of_ours": "ok",
}


def harness_spec(tmp_path: Path, name: str = "sub") -> RunSpec:
    return make_spec(
        tmp_path,
        name=name,
        project={
            ".sphere-engine/pytest.ini": INI,
            ".sphere-engine/tests/test_api.py": TESTS,
        },
        upload={"solution.py": SOLUTION},
        stage_specs=stages(timeout=40, run=HARNESS_RUN, test="se_utils_cli evaluate"),
        read_only=(".sphere-engine",),
    )


@pytest.mark.parametrize("kind", NAMESPACED)
def test_the_harness_api_in_the_real_sandbox(tmp_path: Path, kind: str) -> None:
    info = SandboxInfo(kind, kind)  # type: ignore[arg-type]
    outcome = run_submission(harness_spec(tmp_path), sandbox=info)
    statuses = {t["name"]: t["status"] for t in report(outcome)}
    assert statuses == EXPECTED, text(outcome, "stage_run_output")
    assert outcome.status == StatusCode.FAIL
    messages = {t["name"]: t.get("failure", "") for t in report(outcome)}
    assert "timed out after 1 s: solution.spin()" in messages["test_a_hang_fails_this_test"]
    limit = messages["test_many_short_hangs_hit_the_tests_limit"]
    assert "timed out after 2.5 s (the test's limit)" in limit
    assert "timed out after 0.5 s" in messages["test_a_program_that_hangs"]
    assert "KeyError: 'missing key'" in messages["test_an_unexpected_exception_fails_the_test"]
    assert "grader_harness.py" not in messages["test_an_unexpected_exception_fails_the_test"]
    assert not processes_with("sleep 300") and not sandbox_processes()


@pytest.mark.parametrize(
    ("kind", "student_uid", "sees_tests"),
    [
        # root in its container (as unshare leaves it): the student's process is nobody
        # and the tests' folder is closed to it
        ("unshare", 65534, False),
        # an ordinary user (a user namespace): the same user, who can read the tests;
        # what the README says still holds on the cloud service without root
        ("bubblewrap", INNER_UID, True),
    ],
)
def test_without_a_broker_the_student_runs_as_a_child(
    tmp_path: Path, kind: str, student_uid: int, sees_tests: bool
) -> None:
    """As the cloud service would run it: no engine to ask for a sandbox."""
    if kind not in NAMESPACED:
        pytest.skip(f"{kind} cannot run here")
    spec = harness_spec(tmp_path)
    tests = (
        "import grader_harness as harness\n"
        "solution = harness.module('solution')\n"
        "def test_add():\n    assert solution.add(2, 3) == 5\n"
        "def test_identity():\n    seen = solution.whoami()\n"
        f"    assert (seen['uid'], seen['tests']) == ({student_uid}, {sees_tests}), seen\n"
        "def test_hang():\n    solution.spin()\n"
    )
    (spec.project_dir / ".sphere-engine" / "tests" / "test_api.py").write_text(tests)
    work = spec.work_dir
    cell = Cell(
        kind,  # type: ignore[arg-type]
        work / "home", work / "runtime", work / "streams", work / "toolkit", work / "etc",
        uid=None, limits=SMALL, read_only=(".sphere-engine",), private=(".sphere-engine",),
        readable=tuple(dict.fromkeys([sys.prefix, sys.base_prefix])),
    )  # fmt: skip
    prepare_cell(spec, cell, replace(cell, role="student", etc=work / "etc-student"))
    env = stage_env(cell, {
        "SE_PATH_WORKSPACE": cell.inside("workspace"),
        "SE_PATH_UNIT_TESTS_REPORT": f"{cell.inside('runtime')}/unit_tests_report.xml",
    })  # fmt: skip
    assert "GRADER_HARNESS_SOCKET" not in env
    out = cell.streams / "out"
    exit = run_stage(cell, HARNESS_RUN, timeout=30, env=env, stdout=out, stderr=out)
    assert exit.exit_code == 1, out.read_text()
    xml = (cell.runtime / "unit_tests_report.xml").read_bytes()
    statuses = {case["name"]: case["status"] for case in parse_junit(xml)}
    assert statuses == {"test_add": "ok", "test_identity": "ok", "test_hang": "failure"}, (
        out.read_text()
    )


def test_plain_pytest_projects_get_a_time_limit_per_test(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        project={
            ".sphere-engine/tests/conftest.py": (
                "import os, sys\nsys.path.append(os.environ['SE_PATH_WORKSPACE'])\n"
            ),
            ".sphere-engine/tests/test_plain.py": (
                "import pytest\nfrom solution import add, spin\n"
                "def test_add():\n    assert add(1, 2) == 3\n"
                "@pytest.mark.grader_timeout(0.5)\n"
                "def test_spin():\n    spin()\n"
                "def test_after():\n    assert add(2, 2) == 4\n"
            ),
        },
        upload={"solution.py": SOLUTION},
        stage_specs=stages(
            timeout=20,
            run=(
                "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -B -P -m pytest -q -p no:cacheprovider "
                '.sphere-engine/tests --junitxml="$SE_PATH_UNIT_TESTS_REPORT"'
            ),
            test="se_utils_cli evaluate",
        ),
        read_only=(".sphere-engine",),
    )
    outcome = run_submission(spec)
    failures = {t["name"]: t.get("failure", "") for t in report(outcome) if t["status"] != "ok"}
    assert list(failures) == ["test_spin"], text(outcome, "stage_run_output")
    assert "timed out after 0.5 s" in failures["test_spin"]
    assert outcome.status == StatusCode.FAIL


def test_a_project_copy_of_the_harness_runs_unchanged(tmp_path: Path) -> None:
    """Copied beside the tests (for the cloud service), the module is its own entry point."""
    spec = harness_spec(tmp_path)
    source = Path(__file__).resolve().parents[2] / "grader" / "harness.py"
    (spec.project_dir / ".sphere-engine" / "grader_harness.py").write_text(source.read_text())
    copied = "python3 -P .sphere-engine/grader_harness.py pytest -q .sphere-engine/tests"
    spec = replace(spec, stages=stages(timeout=40, run=copied, test="se_utils_cli evaluate"))
    outcome = run_submission(spec)
    statuses = {t["name"]: t["status"] for t in report(outcome)}
    assert statuses == EXPECTED, text(outcome, "stage_run_output")
    assert outcome.status != StatusCode.OK
