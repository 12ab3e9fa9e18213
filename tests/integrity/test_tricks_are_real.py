"""The sample course's cheaters are real threats: against the plain pytest project most
graders use (``python3 -m pytest`` in the workspace, the tests importing the student's
module in the process that writes the report), their tricks earn full marks or show the
hidden tests. sample_course/README.md says so; this checks it, so that the integrity
suite and the sample course never rest on toothless attacks.

The same repositories get what their honest code earns under ``grader_harness``
(tests/sample, tests/core/test_sample_course.py and this folder's test_cheaters_graded.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grader.api.models import StatusCode
from grader.engine.projects import build_run_spec, find_project, resolve_scenario
from grader.engine.runner import run_submission
from grader.engine.sandbox import KINDS, SandboxInfo, probe_sandbox
from tests.support.leaks import Secrets

pytestmark = [pytest.mark.sandbox]

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
NAMESPACED = [k for k in KINDS if k != "rlimits" and probe_sandbox(k) is None]
PLAIN_RUN = (
    "python3 -m pytest -q -p no:cacheprovider .sphere-engine/tests "
    '--junitxml="$SE_PATH_UNIT_TESTS_REPORT"'
)
IN_PROCESS = {
    "hw1": """import importlib, os, sys

import pytest

sys.path.insert(0, os.environ["SE_PATH_WORKSPACE"])


@pytest.fixture
def solution():
    return importlib.import_module("solution")
""",
    "hw2": """import os, subprocess

import pytest

WORKSPACE = os.environ["SE_PATH_WORKSPACE"]


@pytest.fixture
def rpn():
    def run(text):
        done = subprocess.run(["./prog"], input=text, capture_output=True, text=True,
                              cwd=WORKSPACE, timeout=2)
        if done.returncode != 0:
            pytest.fail(f"prog exited with status {done.returncode}: {done.stderr[-500:]}")
        return done.stdout
    return run
""",
}
FULL_MARKS = [
    ("hw1", "iwalsh"),  # a root conftest.py
    ("hw1", "jnakamura"),  # hooks registered from the student's module
    ("hw1", "kadeyemi"),  # pytest.py in the workspace
    ("hw1", "mdubois"),  # an all-passed report at import, then os._exit
    ("hw1", "nhassan"),  # the report rewritten at exit and by a racing helper
    ("hw2", "nhassan"),  # ... by a helper that prog leaves behind
    ("hw1", "pmehta"),  # pytest.ini and friends
    ("hw1", "qnguyen"),  # answers equal to anything
    ("hw1", "skowalczyk"),  # pytest patched from the student's module
]


def plain_project(root: Path, assignment: str) -> Path:
    """The sample project run the common way: plain pytest, the student's code in-process."""
    project = root / assignment
    shutil.copytree(SAMPLE / "projects" / assignment, project)
    (project / ".sphere-engine" / "pytest.ini").unlink()
    (project / ".sphere-engine" / "tests" / "conftest.py").write_text(IN_PROCESS[assignment])
    config = json.loads((project / "config.json").read_text())
    config["scenarios"]["grade"]["stages"]["run"]["command"] = PLAIN_RUN
    (project / "config.json").write_text(json.dumps(config))
    return project


Result = dict[str, object]


def run_plainly(tmp_path: Path, assignment: str, student: str) -> Result:
    """The student's last commit through the plain project; the engine's result."""
    project = find_project(plain_project(tmp_path / "projects", assignment).parent, assignment)
    assert project.config_text is not None
    upload = tmp_path / "upload"
    bundle = SAMPLE / "repos" / assignment / f"{student}.bundle"
    subprocess.run(["git", "clone", "-q", str(bundle), str(upload)], check=True)
    shutil.rmtree(upload / ".git")
    work = tmp_path / "work"
    work.mkdir()
    scenario = resolve_scenario(project.config_text, "grade", source="config.json")
    spec = build_run_spec(1, project, scenario, upload_dir=upload, work_dir=work)
    info = SandboxInfo(NAMESPACED[0], "plain pytest")
    outcome = run_submission(spec, sandbox=info)
    report = outcome.streams.get("tests_report")
    return {
        "status": outcome.status,
        "score": outcome.score,
        "report": report.read_text() if report else "",
    }


@pytest.fixture(scope="module")
def plain_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Result]:
    """Every case through the plain project, two at a time (both cores)."""
    cases = [*FULL_MARKS, ("hw1", "rsilva")]

    def run(case: tuple[str, str]) -> Result:
        return run_plainly(tmp_path_factory.mktemp("-".join(case)), *case)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(cases, pool.map(run, cases), strict=True))


@pytest.mark.skipif(not NAMESPACED, reason="needs root and a namespace sandbox, as CI has")
@pytest.mark.parametrize(
    ("assignment", "student"), FULL_MARKS, ids=[f"{a}-{s}" for a, s in FULL_MARKS]
)
def test_the_trick_earns_full_marks_from_plain_pytest(
    plain_runs: dict[tuple[str, str], Result], assignment: str, student: str
) -> None:
    result = plain_runs[assignment, student]
    assert (result["status"], result["score"]) == (StatusCode.OK, 100.0), result["report"]


@pytest.mark.skipif(not NAMESPACED, reason="needs root and a namespace sandbox, as CI has")
def test_the_hidden_tests_reach_the_report_from_plain_pytest(
    plain_runs: dict[tuple[str, str], Result],
) -> None:
    result = plain_runs["hw1", "rsilva"]
    secrets = Secrets.of(SAMPLE / "projects" / "hw1")
    messages = "\n".join(str(test.get("failure", "")) for test in json.loads(str(result["report"])))
    found = set(secrets.found_in(messages))
    assert secrets.names <= found and len(found & secrets.lines) >= len(secrets.lines) // 2
