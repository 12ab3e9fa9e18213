"""The harness as it runs on the cloud service (no engine to ask for a sandbox): the
student's process is an ordinary child, and what it is told must still name no test and
no path where the grade or the stage's output is written."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grader.engine.evaluate import parse_junit
from grader.engine.runner.workspace import prepare_cell
from grader.engine.sandbox import KINDS, Cell, probe_sandbox, run_stage, stage_env
from grader.engine.spec import STAGE_ORDER, Limits, RunSpec, StageSpec

pytestmark = [pytest.mark.sandbox]

HARNESS_RUN = "python3 -P -m grader_harness pytest -q .sphere-engine/tests"
SOLUTION = """
import os

def environment():
    return dict(os.environ)
"""
TESTS = """
import grader_harness as harness

solution = harness.module("solution")


def test_hidden_name_nobody_may_know():
    seen = solution.environment()
    told = sorted(k for k in seen if k.startswith(("PYTEST", "SE_PATH")))
    told.remove("SE_PATH_WORKSPACE")
    assert told == [], told
    assert not any("test_hidden" in value for value in seen.values())


def test_hidden_programs_are_told_nothing_either():
    done = harness.run(["/usr/bin/env"])
    assert "PYTEST_CURRENT_TEST" not in done.stdout and "test_hidden" not in done.stdout
    assert "SE_PATH_STAGE_RUN_STDOUT" not in done.stdout
"""


@pytest.mark.skipif(
    "unshare" not in KINDS or probe_sandbox("unshare") is not None,
    reason="needs root and unshare, as CI has",
)
def test_a_child_process_learns_no_test_name_and_no_private_path(tmp_path: Path) -> None:
    project, work = tmp_path / "project", tmp_path / "work"
    (project / ".sphere-engine" / "tests").mkdir(parents=True)
    (project / ".sphere-engine" / "tests" / "test_hidden.py").write_text(TESTS)
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "solution.py").write_text(SOLUTION)
    cell = Cell(
        "unshare", work / "home", work / "runtime", work / "streams", work / "toolkit",
        work / "etc", uid=None, limits=Limits(), read_only=(".sphere-engine",),
        private=(".sphere-engine",), readable=tuple(dict.fromkeys([sys.prefix, sys.base_prefix])),
    )  # fmt: skip
    spec = _spec(project, upload, work)
    prepare_cell(spec, cell, replace(cell, role="student", etc=work / "etc-student"))
    runtime, streams = cell.inside("runtime"), cell.inside("streams")
    env = stage_env(cell, {
        "SE_PATH_WORKSPACE": cell.inside("workspace"),
        "SE_PATH_UNIT_TESTS_REPORT": f"{runtime}/unit_tests_report.xml",
        "SE_PATH_STAGE_RUN_STDOUT": f"{streams}/stage_run_output",
    })  # fmt: skip
    assert "GRADER_HARNESS_SOCKET" not in env  # the cloud service has no broker
    out = cell.streams / "out"
    exit = run_stage(cell, HARNESS_RUN, timeout=30, env=env, stdout=out, stderr=out)
    xml = (cell.runtime / "unit_tests_report.xml").read_bytes()
    statuses = {case["name"]: case["status"] for case in parse_junit(xml)}
    assert statuses == {
        "test_hidden_name_nobody_may_know": "ok",
        "test_hidden_programs_are_told_nothing_either": "ok",
    }, out.read_text()
    assert exit.exit_code == 0


def _spec(project: Path, upload: Path, work: Path) -> RunSpec:
    work.mkdir()
    stages = tuple(StageSpec(name, None, 5.0) for name in STAGE_ORDER)
    return RunSpec(1, "p", project, upload, work, stages, (".sphere-engine",), False, Limits())
