"""Every bench script still runs: each once in ``--quick`` mode (tiny sizes, a few seconds).

Only that a script works and what it prints is checked here; the speed and memory
figures themselves are read by people (BENCHMARKS.md), never asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "pipeline_efficiency": (
        "graded: 8/8",
        "with --tests",
        "faster than the quickstart loop",
        "the whole command, of ideal: plain ",
    ),
    "overhead": ("graded:                  20/20", "grader CPU per student", "peak memory"),
    "nightly": ("0 submissions created (must be 0)",),
    "real_work": ("graded: 4/4 (4 submissions)", "exit codes as expected: True"),
    "requests_per_submission": ("per submission (goal 3)",),
    "sandbox_cost": ("pytest (hw1, 10 tests)", "whole hw1 submission"),
    "cgroup_cost": ("cgroup cost",),
    "harness_cost": ("per call", "per test", "ratio (target <= 1.3)"),
    "cloud_scale": ("K=4 slots: ", "8/8 graded", "a 2000-student course"),
    "similarity": ("second run (mirrors in place)", "planted pairs found above the threshold: 4/4"),
}

# what the lead runs for the final figures: plain and --tests in one invocation
ARGUMENTS = {"pipeline_efficiency": ["--both"]}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_bench_script_runs_in_quick_mode(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # every file the script writes
    env.pop("SPHERE_ENGINE_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / f"{script}.py"),
            "--quick",
            *ARGUMENTS.get(script, []),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for text in EXPECTED[script]:
        assert text in done.stdout, done.stdout
