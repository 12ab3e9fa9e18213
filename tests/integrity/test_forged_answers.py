"""Answers forged to make the tests' own process raise.

The student's process controls what it answers, so its answers are decoded in the tests'
process from plain data. A decoded value must never raise there: a forged
``{"$fraction": "1/0"}`` would raise a real ``ZeroDivisionError`` inside the test, and a
test written as for in-process code (``pytest.raises(ZeroDivisionError)`` around a call of
the student's) would pass, where the honest solution's own ``ZeroDivisionError`` arrives,
rightly, as a ``StudentError`` and fails it. The same for ``OverflowError`` (a complex
number too large for a float) and ``decimal.InvalidOperation`` (a signalling NaN, which
raises on any comparison). Such answers are unreadable data: the call fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.api.models import StatusCode
from grader.engine.runner import run_submission
from grader.engine.sandbox import KINDS, SandboxInfo, probe_sandbox
from grader.engine.spec import STAGE_ORDER, Limits, RunSpec, StageSpec

pytestmark = [pytest.mark.sandbox]

NAMESPACED = [k for k in KINDS if k != "rlimits" and probe_sandbox(k) is None]
TESTS = """
import decimal

import grader_harness as harness
import pytest

solution = harness.module("solution")


def test_division_by_zero():
    with pytest.raises(ZeroDivisionError):
        solution.divide(1, 0)


def test_a_power_too_large():
    with pytest.raises(OverflowError):
        solution.power(10.0, 400)


def test_the_root_of_a_negative_decimal():
    with pytest.raises(decimal.InvalidOperation):
        assert solution.decimal_root(-1) == 0


def test_an_ordinary_answer():
    assert solution.divide(3, 2) == 1.5
"""
HONEST = """
import decimal


def divide(a, b):
    return a / b


def power(x, n):
    return x**n


def decimal_root(x):
    return decimal.Decimal(x).sqrt()
"""
FORGER = (
    HONEST
    + """
import sys

FORGED = {
    "divide": {"$fraction": "1/0"},
    "power": {"$complex": [{"$int": "1" + "0" * 400}, 0]},
    "decimal_root": {"$decimal": "sNaN"},
}
harness = sys.modules["__main__"]
answer = harness._Worker.answer


def forged(self, request):
    reply = answer(self, request)
    name = request.get("target", {}).get("path", [""])[-1]
    if not reply.get("ok") and name in FORGED:
        reply = {"ok": True, "value": FORGED[name], "stdout": "", "stderr": ""}
    return reply


harness._Worker.answer = forged
"""
)


def run(tmp_path: Path, solution: str) -> tuple[float | None, dict[str, str]]:
    project, upload, work = tmp_path / "project", tmp_path / "upload", tmp_path / "work"
    for folder in (project / ".sphere-engine" / "tests", upload, work):
        folder.mkdir(parents=True)
    (project / ".sphere-engine" / "tests" / "test_calls.py").write_text(TESTS)
    (upload / "solution.py").write_text(solution)
    commands = {
        "run": "python3 -P -m grader_harness pytest -q .sphere-engine/tests",
        "test": "se_utils_cli evaluate",
    }
    stages = tuple(StageSpec(name, commands.get(name), 20.0) for name in STAGE_ORDER)
    spec = RunSpec(1, "p", project, upload, work, stages, (".sphere-engine",), False, Limits())
    outcome = run_submission(spec, sandbox=SandboxInfo(NAMESPACED[0], "forged answers"))
    assert outcome.status in (StatusCode.OK, StatusCode.FAIL)
    report = json.loads(outcome.streams["tests_report"].read_text())
    return outcome.score, {t["name"]: t.get("failure", "") for t in report if t["status"] != "ok"}


@pytest.mark.skipif(not NAMESPACED, reason="needs root and a namespace sandbox, as CI has")
def test_answers_that_would_raise_in_the_tests_process_are_refused(tmp_path: Path) -> None:
    honest_score, honest_failures = run(tmp_path / "honest", HONEST)
    score, failures = run(tmp_path / "forger", FORGER)
    assert score == honest_score == 25.0
    assert (
        sorted(failures)
        == sorted(honest_failures)
        == [
            "test_a_power_too_large",
            "test_division_by_zero",
            "test_the_root_of_a_negative_decimal",
        ]
    )
    # the forged answers were sent, and read as what they are
    assert all("sent unreadable data" in message for message in failures.values()), failures
