"""What the sandbox costs per stage: the same command bare and confined, in one run.

For each command (``true``, ``python3 -c pass``, and the sample course's hw1 pytest run
on a correct solution) prints the median wall time run bare (``/bin/sh -c`` in the
workspace) and confined by each sandbox kind that works here, with the ratio, then one
whole submission (hw1: run + test stages) through ``run_submission``.

    python bench/sandbox_cost.py                  # 15 runs of each
    python bench/sandbox_cost.py --quick          # 3 runs of each
    python bench/sandbox_cost.py --engine-mb 200  # as an engine process holding 200 MB

Neither kind forks the engine process: bubblewrap is started by vfork, the unshare
sandbox by the engine's small zygote process (``grader/engine/sandbox/zygote.py``), so
neither cost should grow with the engine's resident memory (before the zygote, unshare's
did: two forks of the engine per stage). ``--engine-mb`` makes this process hold that
much, touched, first, to check.
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
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import IN_PROCESS_RUN, in_process_hw1
from grader.engine.runner import run_submission
from grader.engine.runner.workspace import prepare_cell
from grader.engine.sandbox import (
    KINDS,
    Cell,
    SandboxKind,
    probe_sandbox,
    run_stage,
    sandbox_uid,
    stage_env,
)
from grader.engine.sandbox.layout import adopt_ignored_signals
from grader.engine.spec import STAGE_ORDER, Limits, RunSpec, StageSpec

SAMPLE = Path(__file__).resolve().parents[1] / "sample_course"
COMMANDS = {
    "true": "true",
    "python3 -c pass": "python3 -c pass",
    "pytest (hw1, 10 tests)": IN_PROCESS_RUN,
}


def hw1_spec(root: Path, name: str) -> RunSpec:
    """The sample course's hw1 project with amartin's correct solution uploaded."""
    upload, work = root / name / "upload", root / name / "work"
    bundle = SAMPLE / "repos" / "hw1" / "amartin.bundle"
    subprocess.run(["git", "clone", "-q", str(bundle), str(upload)], check=True)
    shutil.rmtree(upload / ".git")
    work.mkdir()
    project = root / name / "project"  # the in-process variant: the same command as ever
    shutil.copytree(SAMPLE / "projects" / "hw1", project)
    in_process_hw1(project)
    stages = json.loads((project / "config.json").read_text())["scenarios"]["grade"]["stages"]
    specs = tuple(
        StageSpec(n, stages.get(n, {}).get("command"), stages.get(n, {}).get("timeout", 60))
        for n in STAGE_ORDER
    )
    return RunSpec(1, "hw1", project, upload, work, specs, (".sphere-engine",), False, Limits())


def medians_ms(actions: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median wall time of each action, run in turns so machine load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for action in actions.values():
        action()  # warm the page cache once
    for _ in range(runs):
        for name, action in actions.items():
            began = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(spent) * 1000 for name, spent in times.items()}


def bare(workspace: Path, report: Path, command: str) -> Callable[[], object]:
    python_bins = dict.fromkeys([f"{sys.prefix}/bin", f"{sys.base_prefix}/bin"])
    env = {
        "PATH": ":".join([*python_bins, "/usr/bin", "/bin"]),
        "HOME": str(workspace),
        "SE_PATH_WORKSPACE": str(workspace),
        "SE_PATH_UNIT_TESTS_REPORT": str(report),
    }

    def go() -> object:
        return subprocess.run(["/bin/sh", "-c", command], cwd=workspace, env=env, check=True,
                              capture_output=True)  # fmt: skip

    return go


def confined(cell: Cell, command: str) -> Callable[[], object]:
    env = stage_env(cell, {
        "SE_PATH_WORKSPACE": cell.inside("workspace"),
        "SE_PATH_UNIT_TESTS_REPORT": f"{cell.inside('runtime')}/unit_tests_report.xml",
    })  # fmt: skip
    out, err = cell.streams / "bench_out", cell.streams / "bench_err"

    def go() -> object:
        exit = run_stage(cell, command, timeout=30, env=env, stdout=out, stderr=err)
        if exit.exit_code != 0:
            raise SystemExit(f"{cell.kind}: {command!r} failed: {err.read_text()[-300:]}")
        return exit

    return go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 runs of each instead of 15")
    parser.add_argument("--engine-mb", type=int, default=0, help="hold this many MB first")
    args = parser.parse_args()
    runs = 3 if args.quick else 15
    adopt_ignored_signals()  # as the engine does when it starts (nohup, background jobs)
    held = bytearray(args.engine_mb << 20)
    held[::4096] = b"e" * len(held[::4096])  # resident, as an engine's heap is
    if args.engine_mb:
        print(f"this process holds {args.engine_mb} MB, as a large engine process would")
    kinds = [kind for kind in KINDS if probe_sandbox(kind) is None]
    root = Path(tempfile.mkdtemp(prefix="sandbox-cost-"))
    root.chmod(0o711)  # the rlimits kind walks the host path as the sandbox uid
    closed = [p for p in root.parents if not p.stat().st_mode & 0o001]
    if "rlimits" in kinds and closed:  # e.g. TMPDIR under pytest's 0700 tmp_path
        kinds.remove("rlimits")
        print(f"rlimits: not measured ({closed[0]} is not searchable by the sandbox uid)")
    try:
        with ExitStack() as uids:
            measure(root, kinds, runs, uids)
        whole = []
        for index in range(runs):
            spec = hw1_spec(root, f"whole-{index}")
            began = time.perf_counter()
            outcome = run_submission(spec)
            whole.append(time.perf_counter() - began)
            assert outcome.status == 15, outcome
        ms = statistics.median(whole) * 1000
        print(f"whole hw1 submission (run + test, detected sandbox): {ms:.0f} ms median")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(root: Path, kinds: list[SandboxKind], runs: int, uids: ExitStack) -> None:
    """Print one row per command: bare, then each kind confined, with the ratio."""
    bare_spec = hw1_spec(root, "bare")
    workspace = root / "bare" / "ws"
    shutil.copytree(bare_spec.project_dir, workspace, ignore=shutil.ignore_patterns("*.json"))
    shutil.copytree(bare_spec.upload_dir, workspace, dirs_exist_ok=True)
    cells = {kind: prepared_cell(root, kind, uids.enter_context(sandbox_uid())) for kind in kinds}
    print(f"sandbox cost per stage (median of {runs}, taken in turns; ratio = confined / bare)")
    print(f"{'command':<24}{'bare ms':>9}" + "".join(f"{k:>14} ms{'ratio':>7}" for k in kinds))
    unreachable = sys.base_prefix.startswith("/root")  # 0700: a sandbox uid cannot enter it
    for name, command in COMMANDS.items():
        actions = {"bare": bare(workspace, root / "bare.xml", command)}
        for kind in kinds:
            if not (kind == "rlimits" and "pytest" in name and unreachable):
                actions[kind] = confined(cells[kind], command)
        ms = medians_ms(actions, runs)
        row = f"{name:<24}{ms['bare']:>9.1f}"
        for kind in kinds:
            if kind in ms:
                row += f"{ms[kind]:>17.1f}{ms[kind] / ms['bare']:>7.1f}"
            else:
                row += f"{'n/a':>17}{'':>7}"
        print(row)


def prepared_cell(root: Path, kind: SandboxKind, uid: int | None) -> Cell:
    """A cell of ``kind`` laid out as the runner does (hw1 + amartin)."""
    spec = hw1_spec(root, f"cell-{kind}")
    work = spec.work_dir
    readable = tuple(dict.fromkeys([sys.prefix, sys.base_prefix]))
    cell = Cell(kind, work / "home", work / "runtime", work / "streams", work / "toolkit",
                work / "etc", uid, spec.limits, (".sphere-engine",), readable)  # fmt: skip
    student = replace(cell, role="student", etc=work / "etc-student")
    prepare_cell(spec, cell, student)
    work.parent.chmod(0o711)
    return cell


if __name__ == "__main__":
    main()
