"""What grader_harness costs: per call, per test, and per hw1 submission.

The harness runs the student's code in a process (a sandbox) of its own, so every call
crosses a socket and the first one starts that process. Measured through the local
engine's runner, in the sandbox this machine gives (all in one run, taken in turns):

* per call: one test calling ``solution.add(1, 2)`` CALLS times, minus the same test
  calling it once, divided by CALLS - 1;
* per test: TESTS trivial tests through the harness against the same tests calling the
  student's module in pytest's own process (the in-process variant of the sample's hw1,
  ``bench.harness.IN_PROCESS_RUN``), each a whole run stage;
* per hw1 submission: the sample's hw1 project (10 tests, amartin's solution) as shipped,
  against its in-process variant: whole submissions (run + test stages) through
  ``run_submission``. Target (issue 10): at most 1.3x.

    python bench/harness_cost.py            # 7 rounds
    python bench/harness_cost.py --quick    # 2 rounds
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import SAMPLE, in_process_hw1, machine
from grader.engine.runner import run_submission
from grader.engine.sandbox import detect_sandbox
from grader.engine.spec import STAGE_ORDER, Limits, RunSpec, StageSpec

HARNESS_RUN = "python3 -P -m grader_harness pytest -q .sphere-engine/tests"
SOLUTION = "def add(a, b):\n    return a + b\n"
CALLS = 2000
TESTS = 200


def spec_for(root: Path, name: str, project: Path, upload: Path) -> RunSpec:
    stages = json.loads((project / "config.json").read_text())["scenarios"]["grade"]["stages"]
    specs = tuple(
        StageSpec(n, stages.get(n, {}).get("command"), stages.get(n, {}).get("timeout", 60))
        for n in STAGE_ORDER
    )
    work = root / "runs" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return RunSpec(1, "p", project, upload, work, specs, (".sphere-engine",), False, Limits())


def project(root: Path, name: str, tests: str, *, in_process: bool) -> Path:
    """A project whose run stage is the harness's (or the in-process variant's)."""
    folder = root / name
    shutil.copytree(SAMPLE / "projects" / "hw1", folder)
    suite = folder / ".sphere-engine" / "tests"
    for old in suite.glob("test_*.py"):
        old.unlink()
    (suite / "test_bench.py").write_text(tests)
    if in_process:
        in_process_hw1(folder)
    return folder


def timed(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def submission(spec_of: Callable[[], RunSpec]) -> Callable[[], object]:
    def go() -> object:
        outcome = run_submission(spec_of())
        if outcome.status not in (14, 15):
            raise SystemExit(f"bench submission ended with status {outcome.status}")
        return outcome

    return go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    rounds, calls, tests = (1, 100, 20) if quick else (7, CALLS, TESTS)
    print(f"grader_harness cost ({detect_sandbox().kind}); {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-harness-") as tmp:
        root = Path(tmp)
        upload = root / "upload"
        upload.mkdir()
        (upload / "solution.py").write_text(SOLUTION)
        amartin = root / "amartin"
        bundle = SAMPLE / "repos" / "hw1" / "amartin.bundle"
        subprocess.run(["git", "clone", "-q", str(bundle), str(amartin)], check=True)
        shutil.rmtree(amartin / ".git")
        fixture = "def test_{i}(solution):\n    assert solution.add({i}, 1) == {i} + 1\n"
        many = "".join(fixture.format(i=i) for i in range(TESTS))
        loop = (
            f"def test_calls(solution):\n    for i in range({CALLS}):\n        solution.add(i, 1)\n"
        )
        one = "def test_calls(solution):\n    solution.add(1, 1)\n"
        hw1 = SAMPLE / "projects" / "hw1"
        hw1_in_process = root / "hw1-in-process"
        shutil.copytree(hw1, hw1_in_process)
        in_process_hw1(hw1_in_process)
        cases = {
            "calls": (project(root, "calls", loop, in_process=False), upload),
            "one call": (project(root, "one", one, in_process=False), upload),
            "tests via harness": (project(root, "tests-h", many, in_process=False), upload),
            "tests in-process": (project(root, "tests-i", many, in_process=True), upload),
            "hw1 via harness": (hw1, amartin),
            "hw1 in-process": (hw1_in_process, amartin),
        }
        actions = {
            name: submission(lambda n=name, p=p, u=u: spec_for(root, n, p, u))  # type: ignore[misc]
            for name, (p, u) in cases.items()
        }
        times: dict[str, list[float]] = {name: [] for name in actions}
        for action in actions.values():
            action()  # warm caches once
        for _ in range(rounds):
            for name, action in actions.items():
                times[name].append(timed(action))
    med = {name: statistics.median(spent) for name, spent in times.items()}
    per_call = (med["calls"] - med["one call"]) / (calls - 1) * 1e6
    per_test = (med["tests via harness"] - med["tests in-process"]) / tests * 1e3
    ratio = med["hw1 via harness"] / med["hw1 in-process"]
    print(f"  per call (round trip, plain data):       {per_call:8.0f} us")
    print(f"  per test, beyond in-process pytest:      {per_test:8.2f} ms ({tests} tests)")
    print(f"  hw1 submission via harness:              {med['hw1 via harness'] * 1000:8.0f} ms")
    print(f"  hw1 submission in-process:               {med['hw1 in-process'] * 1000:8.0f} ms")
    print(f"  ratio (target <= 1.3):                   {ratio:8.2f}x (median of {rounds})")


if __name__ == "__main__":
    main()
