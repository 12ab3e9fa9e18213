"""Pipeline efficiency: N students whose run stage sleeps S seconds, engine with K slots.

One run on this machine, against one served engine (`grader engine serve --slots K`,
sandboxed, on loopback), prints:

* the whole `grader grade COURSE --engine URL` command's wall time, as a user sees it (a
  process of its own, from its start to its exit: Python's start and grader's imports,
  the run, the outputs and the summary it prints), against the ideal ceil(N/K) * S
  (issue 14 item 4: at least 0.95 of ideal at N=200, K=8, S=1; 0.92 with ``--tests``),
  and its phases, from when its lines arrive: until "grading N student submissions",
  until the last student's line, after it;
* the engine's own ceiling: the same N submissions created at once straight to the
  engine (which queues them) and polled every 20 ms: what no client can beat;
* a plain sequential loop of the quickstart's steps against the same engine: tar the
  folder, POST /submissions, then GET /submissions/:id every ``--poll`` seconds (the
  quickstart says "every few seconds": 3 s by default) until it is no longer executing.
  With ``--loop-students M`` the loop covers M students and its time is scaled to N (it
  is sequential, so each student costs the same).

    python bench/pipeline_efficiency.py            # N=200, K=8, S=1, loop over all 200
    python bench/pipeline_efficiency.py --tests    # a project with a test report, as real ones
    python bench/pipeline_efficiency.py --both --loop-students 1   # plain, then --tests
    python bench/pipeline_efficiency.py --quick    # N=8, K=4, S=0.5, loop over 2
"""

from __future__ import annotations

import argparse
import io
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, machine, make_course, passing_run, served_engine


def workspace_tar(folder: Path) -> bytes:
    """``tar -czf source.tar.gz --transform 's,^,workspace/,' .`` in Python."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="workspace")
    return buffer.getvalue()


@dataclass(frozen=True)
class Command:
    """One `grader grade` process: when its lines came, relative to its start."""

    seconds: float  # start to exit
    started: float  # until "grading N student submissions" (imports, course, checks)
    last_student: float  # until the last student's line
    graded: int
    exit_code: int

    def phases(self) -> str:
        return (
            f"{self.started:.1f} s starting, {self.last_student - self.started:.1f} s "
            f"grading, {self.seconds - self.last_student:.1f} s after the last student"
        )


def whole_command(course: Path, url: str, token: str, slots: int) -> Command:
    """``grader grade COURSE --engine URL`` in a process of its own, timed from outside."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "SPHERE_ENGINE_TOKEN": token, "PYTHONPATH": path, "COLUMNS": "200"}
    command = [sys.executable, "-m", "grader", "grade", str(course), "--engine", url]
    command += ["--concurrency", str(slots)]
    began = time.monotonic()
    started = last = 0.0
    graded = 0
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            now = time.monotonic() - began
            if line.startswith("grading ") and not started:
                started = now
            elif line.startswith("[") and "/" in line.split("]")[0]:
                last = now
                graded += ": graded (" in line
        code = process.wait()
    return Command(time.monotonic() - began, started, last or started, graded, code)


def engine_alone(course: Path, url: str, token: str, students: list[str]) -> float:
    """The engine's own ceiling: every submission created at once, polled every 20 ms."""
    started = time.monotonic()
    with httpx.Client(base_url=url, params={"access_token": token}, timeout=60) as client:
        pending = set()
        for sid in students:
            source = ("source.tar.gz", workspace_tar(course / "work" / sid))
            created = client.post(
                "/submissions", data={"project_id": "bench"}, files={"source": source}
            )
            created.raise_for_status()
            pending.add(created.json()["id"])
        while pending:
            time.sleep(0.02)
            ids = sorted(pending)
            for start in range(0, len(ids), 20):
                chunk = ids[start : start + 20]
                params = {"ids": ",".join(map(str, chunk)), "limit": str(len(chunk))}
                items = client.get("/submissions", params=params).json()["items"]
                pending -= {item["id"] for item in items if not item["executing"]}
    return time.monotonic() - started


def quickstart_loop(course: Path, url: str, token: str, students: list[str], poll: float) -> float:
    """The quickstart, student after student: tar, create, poll every ``poll`` s, read."""
    started = time.monotonic()
    with httpx.Client(base_url=url, params={"access_token": token}, timeout=60) as client:
        for sid in students:
            source = ("source.tar.gz", workspace_tar(course / "work" / sid))
            created = client.post(
                "/submissions", data={"project_id": "bench"}, files={"source": source}
            )
            created.raise_for_status()
            sid_engine = created.json()["id"]
            while True:
                time.sleep(poll)
                answer = client.get(f"/submissions/{sid_engine}").json()
                if not answer["executing"]:
                    break
            if answer["result"]["status"]["code"] != 15:
                raise SystemExit(f"quickstart loop: {sid} ended {answer['result']['status']}")
    return time.monotonic() - started


@dataclass(frozen=True)
class Figures:
    """One kind of project (plain or with ``--tests``) measured end to end."""

    tests: bool
    command: Command
    alone: float
    loop: float  # scaled to N


def measure(args: argparse.Namespace, *, tests: bool) -> Figures:
    """A fresh course and a fresh served engine: the command, the engine alone, the loop."""
    n, k, s = args.students, args.slots, args.sleep
    loop_n = min(n, args.loop_students or n)
    with tempfile.TemporaryDirectory(prefix="bench-efficiency-") as tmp:
        course = make_course(
            Path(tmp),
            n,
            run_command=passing_run(s) if tests else f"sleep {s:g}",
            test_command="se_utils_cli evaluate" if tests else None,
            slots=k,
        )
        with served_engine(course / "projects", Path(tmp) / "engine", slots=k) as engine:
            ours = whole_command(course, engine.url, engine.token, k)
            everyone = [f"s{i:04d}" for i in range(n)]
            alone = engine_alone(course, engine.url, engine.token, everyone)
            loop = quickstart_loop(course, engine.url, engine.token, everyone[:loop_n], args.poll)
    return Figures(tests, ours, alone, loop * n / loop_n)


def report(args: argparse.Namespace, figures: Figures, ideal: float) -> None:
    n, loop_n = args.students, min(args.students, args.loop_students or args.students)
    ours = figures.command
    scaled = f", {loop_n} run and scaled to {n}" if loop_n < n else ""
    goal = 0.92 if figures.tests else 0.95
    kind = "with --tests" if figures.tests else "plain"
    print(
        f"  {kind} (run stage `sleep {args.sleep:g}`"
        + (", a JUnit report, test stage)" if figures.tests else ")")
    )
    print(f"  graded: {ours.graded}/{n} (exit {ours.exit_code})")
    print(f"  {'ideal ceil(N/K)*S':<34}{ideal:8.1f} s")
    print(
        f"  {'grader grade, the whole command':<34}{ours.seconds:8.1f} s  -> "
        f"{ideal / ours.seconds:.2f} of ideal (goal {goal:g})"
    )
    print(f"    ({ours.phases()})")
    alone = figures.alone
    print(f"  {'engine alone (all at once)':<34}{alone:8.1f} s  -> {ideal / alone:.2f} of ideal")
    print(f"  {f'quickstart loop ({args.poll:g} s polls)':<34}{figures.loop:8.1f} s{scaled}")
    print(f"  grader is {figures.loop / ours.seconds:.1f}x faster than the quickstart loop")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=1.0, help="run stage seconds")
    parser.add_argument("--poll", type=float, default=3.0, help="quickstart poll interval")
    parser.add_argument("--loop-students", type=int, default=None, help="default: all")
    kinds = parser.add_mutually_exclusive_group()
    kinds.add_argument(
        "--tests",
        action="store_true",
        help="the run stage also writes a JUnit report and a test stage evaluates it",
    )
    kinds.add_argument(
        "--both",
        action="store_true",
        help="plain, then --tests (each its own course and engine), and both ratios at the end",
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.students, args.slots, args.sleep, args.poll = 8, 4, 0.5, 0.5
        args.loop_students = 2
    n, k, s = args.students, args.slots, args.sleep
    ideal = math.ceil(n / k) * s
    kinds_run = [False, True] if args.both else [args.tests]
    stages = f"`sleep {s:g}`" + (", a JUnit report, test stage" if args.tests else "")
    if args.both:
        stages += " (plain, then with a JUnit report and a test stage)"
    print(f"pipeline efficiency: N={n}, K={k} slots, run stage {stages}; {machine()}")
    results = [measure(args, tests=tests) for tests in kinds_run]
    for figures in results:
        report(args, figures, ideal)
    if args.both:
        ratios = ", ".join(
            f"{'--tests' if f.tests else 'plain'} {ideal / f.command.seconds:.2f}" for f in results
        )
        print(f"  the whole command, of ideal: {ratios} (goals 0.95, 0.92)")
    ok = all(f.command.graded == n and f.command.exit_code == 0 for f in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
