"""Shared pieces of the benchmarks: synthetic courses, a served engine, measurements.

Every script imports this module; none of it is part of the grader.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from grader.grading import GradeReport
    from grader.records import StudentOutcome

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_course"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench Student",
    "GIT_AUTHOR_EMAIL": "student@example.edu",
    "GIT_AUTHOR_DATE": "2029-12-01T12:00:00Z",
    "GIT_COMMITTER_NAME": "Bench Student",
    "GIT_COMMITTER_EMAIL": "student@example.edu",
    "GIT_COMMITTER_DATE": "2029-12-01T12:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


JUNIT = (
    '<?xml version="1.0"?><testsuite name="s" tests="1">'
    '<testcase classname="c" name="test_ok" time="0.0"/></testsuite>'
)


def passing_run(sleep: float) -> str:
    """A run stage that sleeps, then writes a passing JUnit report for the test stage."""
    report = f"printf '%s' '{JUNIT}' > \"$SE_PATH_UNIT_TESTS_REPORT\""
    return f"sleep {sleep:g} && {report}" if sleep else report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def git(*args: str, cwd: Path | None = None, date: str | None = None) -> None:
    """Run git with a fixed identity; ``date`` sets both author and committer dates."""
    dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}
    env = {**os.environ, **GIT_ENV, **dates}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_git_repo(folder: Path, files: dict[str, str]) -> None:
    """A one-commit repository on ``main`` holding ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    git("init", "-q", "-b", "main", cwd=folder)
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", "Solution", cwd=folder)


def make_course(
    root: Path,
    students: int,
    *,
    run_command: str,
    test_command: str | None = None,
    timeout: int = 60,
    slots: int | None = None,
    git_repos: bool = False,
) -> Path:
    """A course of ``students`` distinct sources and one project ``bench`` running ``run_command``.

    Sources are plain folders, or one-commit git repositories (``git_repos``), which the
    grader mirrors and fetches as it does for real students. Every student's code
    differs, so no two archives are alike (identical archives share one submission).
    """
    course = root / "course"
    project = course / "projects" / "bench"
    project.mkdir(parents=True)
    stages: dict[str, object] = {"run": {"command": run_command, "timeout": timeout}}
    if test_command:
        stages["test"] = {"command": test_command, "timeout": timeout}
    config = {
        "version": 2.1,
        "scenarios": {"main": {"default": True, "network": False, "stages": stages}},
        "files": {"read_only": []},
    }
    (project / "config.json").write_text(json.dumps(config))
    engine = f"[engine]\nslots = {slots}\nconcurrency = {slots}\n" if slots else ""
    (course / "course.toml").write_text(
        f'[course]\nname = "Bench"\n{engine}\n'
        "[assignments.bench]\ndeadline = 2030-01-01T00:00:00Z\n"
        'repo = "work/{student_id}"\nmax_points = 100\n'
    )
    ids = [f"s{index:04d}" for index in range(students)]
    (course / "roster.csv").write_text(
        "student_id,name\n" + "".join(f"{sid},Student {sid}\n" for sid in ids)
    )

    def source(sid: str) -> None:
        files = {"main.py": f"print('student {sid}')\n"}
        folder = course / "work" / sid
        if git_repos:
            make_git_repo(folder, files)
        else:
            folder.mkdir(parents=True)
            (folder / "main.py").write_text(files["main.py"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(source, ids))
    return course


@dataclass(frozen=True)
class ServedEngine:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def cpu_seconds(self) -> float:
        """CPU the engine process and its waited children (the sandboxes) used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def requests(self) -> Counter[str]:
        """Requests the engine answered so far, by kind (``GET /submissions/:id``)."""
        kinds: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            found = ACCESS_LINE.search(line)
            if found:
                kinds[f"{found['method']} {request_kind(found['path'])}"] += 1
        return kinds


ACCESS_LINE = re.compile(r"(?P<method>GET|POST|PUT|DELETE|PATCH) (?P<path>/api/v1/\S*) \d{3} ")


def request_kind(path: str) -> str:
    """``/api/v1/submissions/42/tests_report`` -> ``/submissions/:id/:stream``."""
    parts = path.removeprefix("/api/v1").split("/")
    if len(parts) > 2:
        parts[2] = ":id"
    if len(parts) > 3:
        parts[3] = ":stream"
    return "/".join(parts)


@contextmanager
def served_engine(
    projects: Path, data: Path, *, slots: int, host: str = "127.0.0.1"
) -> Iterator[ServedEngine]:
    """`grader engine serve` in its own process on a free port of ``host`` (loopback).

    Its log (the engine's access log among it) goes to ``data/../engine.log``.
    """
    port = free_port()
    token = secrets.token_urlsafe(16)
    # the engine runs the same grader tree as this script (a scratch copy included)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "SPHERE_ENGINE_TOKEN": token, "PYTHONPATH": path}
    log = data.parent / "engine.log"
    command = [sys.executable, "-m", "grader", "engine", "serve", "--projects", str(projects)]
    command += ["--host", host, "--port", str(port), "--slots", str(slots), "--data", str(data)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/test", params={"access_token": token}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the engine did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield ServedEngine(url, token, process, log)
    finally:
        process.terminate()
        process.wait(timeout=60)


@contextmanager
def engine_token(token: str) -> Iterator[None]:
    """``SPHERE_ENGINE_TOKEN`` set for the body (how `grader grade --engine` finds it)."""
    before = os.environ.get("SPHERE_ENGINE_TOKEN")
    os.environ["SPHERE_ENGINE_TOKEN"] = token
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SPHERE_ENGINE_TOKEN", None)
        else:
            os.environ["SPHERE_ENGINE_TOKEN"] = before


@dataclass(frozen=True)
class Usage:
    """Wall and CPU seconds of a block: this process (all threads) and its waited children."""

    wall: float
    cpu: float
    children_cpu: float


@contextmanager
def measured() -> Iterator[list[Usage]]:
    """``with measured() as box: ...`` then ``box[0]`` holds the block's Usage."""
    box: list[Usage] = []
    before, wall = os.times(), time.monotonic()
    try:
        yield box
    finally:
        after = os.times()
        box.append(
            Usage(
                wall=time.monotonic() - wall,
                cpu=(after.user - before.user) + (after.system - before.system),
                children_cpu=(after.children_user - before.children_user)
                + (after.children_system - before.children_system),
            )
        )


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def graded_count(report: GradeReport) -> int:
    """Students of a run whose status is "graded"."""
    return sum(1 for o in report.summary.outcomes if o.status == "graded")


def machine() -> str:
    """One line about where the figures come from."""
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, load average {load:.1f} at start (machine shared)"


class Timeline:
    """A ``Progress`` for ``grade()`` that notes when the phases of a run happened."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.first_submit: float | None = None
        self.last_finished: float | None = None

    def start(self, total: int) -> None:
        pass

    def step(self, assignment: str, student_id: str, stage: str) -> None:
        if stage == "submit" and self.first_submit is None:
            self.first_submit = time.monotonic()

    def finished(self, outcome: StudentOutcome) -> None:
        self.last_finished = time.monotonic()

    def phases(self, ended: float) -> str:
        """``until first submit / submitting / outputs`` in seconds."""
        first = self.first_submit or self.began
        last = self.last_finished or ended
        return (
            f"{first - self.began:.1f} s until the first submission, "
            f"{last - first:.1f} s submitting, {ended - last:.1f} s writing outputs"
        )


# hw1 as most course suites run it, for comparison: the student's module imported into the
# pytest process that writes the report (what grader_harness exists to avoid).
IN_PROCESS_RUN = (
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -B -P -m pytest -q -p no:cacheprovider "
    '.sphere-engine/tests --junitxml="$SE_PATH_UNIT_TESTS_REPORT"'
)
IN_PROCESS_CONFTEST = """
import importlib, os, sys
from pathlib import Path
import pytest

WORKSPACE = Path(os.environ.get("SE_PATH_WORKSPACE") or Path(__file__).resolve().parents[2])
sys.path.append(str(WORKSPACE))


@pytest.fixture
def solution():
    return importlib.import_module("solution")
"""


def in_process_hw1(project: Path) -> None:
    """Turn a copy of the sample's hw1 project into the in-process variant, in place."""
    (project / ".sphere-engine" / "tests" / "conftest.py").write_text(IN_PROCESS_CONFTEST)
    config = json.loads((project / "config.json").read_text())
    config["scenarios"]["grade"]["stages"]["run"]["command"] = IN_PROCESS_RUN
    (project / "config.json").write_text(json.dumps(config, indent=2))
