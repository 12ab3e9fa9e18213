"""Run `python -m grader grade` as a real process, kill it at chosen moments, read what it left.

A kill point is a ``Trigger``: a condition on the grader's own SQLite (rows of the run
in progress) or on the output folder, checked every few milliseconds while the process
runs. The grader's state and the in-process engine's state are read with read-only
SQLite connections, so watching never changes what is watched.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.served import grader_env

POLL = 0.001  # seconds between two looks at the state while waiting for a kill point
RUN_LIMIT = 120.0  # seconds a single grader process may take before the test gives up
GRACE = 5.0  # seconds for the children of a killed grader to die with it


@dataclass(frozen=True)
class Progress:
    """What the run in progress has done so far, from the grader's SQLite."""

    elapsed: float  # seconds since the process started
    run_started: bool
    creating: int  # rows of this run written before the create call, no id yet
    created: int  # rows of this run with an engine id, not final yet
    final: int  # rows of this run with a final result
    run_finished: bool  # the pipeline is done; outputs are being written
    unstored: int = 0  # submissions the engine created whose id the grader has not stored


class Trigger:
    """Fires ``delay`` seconds after ``condition`` first holds in the run being watched."""

    def __init__(
        self, label: str, condition: Callable[[Progress], bool], delay: float = 0.0
    ) -> None:
        self.label = f"{label} (+{delay * 1000:.0f} ms)" if delay else label
        self.condition = condition
        self.delay = delay
        self.since: float | None = None

    def fires(self, progress: Progress) -> bool:
        if self.since is None and self.condition(progress):
            self.since = progress.elapsed
        return self.since is not None and progress.elapsed - self.since >= self.delay

    def __str__(self) -> str:
        return self.label


@dataclass
class Outcome:
    """How one grader process ended."""

    trigger: str
    pid: int
    killed: bool
    returncode: int
    stdout: str
    stderr: str
    survivors: list[str] = field(default_factory=list)  # children alive after the kill


def connect_readonly(path: Path) -> sqlite3.Connection | None:
    """A read-only connection, or None while the database does not exist yet."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        db.execute("SELECT 1 FROM sqlite_master").fetchall()
    except sqlite3.Error:
        return None
    return db


class Watch:
    """Read-only connections to the grader's and the engine's SQLite, kept open while polling.

    Counts are read engine first, grader second: an id stored in between then makes
    ``unstored`` smaller, never larger, so a kill on ``unstored > 0`` lands in the window.
    """

    def __init__(self, course: Path) -> None:
        self.paths = {
            "grader": state_file(course),
            "engine": course / ".grader" / "engine" / "engine.sqlite3",
        }
        self.dbs: dict[str, sqlite3.Connection] = {}

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()
        self.dbs.clear()

    def query(self, which: str, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        """Rows of ``sql``, or [] while the database or its tables do not exist yet."""
        db = self.dbs.get(which)
        if db is None:
            db = connect_readonly(self.paths[which])
            if db is None:
                return []
            self.dbs[which] = db
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.Error:
            self.dbs.pop(which).close()
            return []

    def count(self, which: str, sql: str) -> int:
        rows = self.query(which, sql)
        return int(rows[0][0] or 0) if rows else 0

    def last_run(self) -> int:
        return self.count("grader", "SELECT MAX(id) FROM runs")

    def unknown_to_grader(self) -> int:
        """Engine submissions whose id the grader has not stored."""
        engine = self.count("engine", "SELECT COUNT(*) FROM submissions")
        return engine - self.count("grader", "SELECT COUNT(engine_id) FROM submissions")

    def progress(self, elapsed: float, run_before: int, orphans_before: int) -> Progress:
        unstored = self.unknown_to_grader() - orphans_before
        run = self.query("grader", "SELECT id, finished_at FROM runs ORDER BY id DESC LIMIT 1")
        if not run or run[0][0] <= run_before:
            return Progress(elapsed, False, 0, 0, 0, False)
        run_id, finished_at = run[0]
        counts = dict(
            self.query(
                "grader",
                "SELECT state, COUNT(*) FROM submissions WHERE run_id = ? GROUP BY state",
                (run_id,),
            )
        )
        return Progress(
            elapsed,
            True,
            counts.get("creating", 0),
            counts.get("created", 0),
            counts.get("final", 0),
            finished_at is not None,
            unstored,
        )


def last_run_id(course: Path) -> int:
    watch = Watch(course)
    try:
        return watch.last_run()
    finally:
        watch.close()


def state_file(course: Path) -> Path:
    return course / ".grader" / "state.sqlite3"


def run_grade(
    course: Path,
    logs: Path,
    trigger: Trigger | None,
    *,
    name: str,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Outcome:
    """Start ``python -m grader grade COURSE``; SIGKILL it when ``trigger`` fires."""
    watch = Watch(course)
    run_before, orphans_before = watch.last_run(), watch.unknown_to_grader()
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "grader", "grade", str(course), *args],
            stdout=out,
            stderr=err,
            cwd=course.parent,
            env={**grader_env(), **(env or {})},
            start_new_session=True,  # its own group: the test can find what it left running
        )
        killed = False
        survivors: list[str] = []
        try:
            while process.poll() is None:
                if time.monotonic() - started > RUN_LIMIT:
                    raise AssertionError(f"{name}: the grader ran longer than {RUN_LIMIT} s")
                elapsed = time.monotonic() - started
                if trigger is not None and trigger.fires(
                    watch.progress(elapsed, run_before, orphans_before)
                ):
                    process.send_signal(signal.SIGKILL)  # the grader alone, as the OOM killer
                    killed = True
                    process.wait()
                    survivors = wait_for_group(process.pid)
                    break
                time.sleep(POLL)
        finally:
            watch.close()
            if process.poll() is None:
                process.kill()
            process.wait()
            kill_group(process.pid)
    return Outcome(
        str(trigger) if trigger else "none",
        process.pid,
        killed,
        process.returncode,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        survivors,
    )


def group_members(pgid: int) -> list[str]:
    """Command lines of the processes still in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append(f"{entry.name}: {cmdline.decode(errors='replace').strip()}")
    return found


def wait_for_group(pgid: int) -> list[str]:
    """Give a killed grader's children ``GRACE`` seconds to die; return any still alive."""
    deadline = time.monotonic() + GRACE
    while (members := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return members


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# reading what the grader and the engine stored ---------------------------------------------


@dataclass(frozen=True)
class GraderRow:
    student_id: str
    archive_sha256: str
    engine_id: int | None
    state: str
    run_id: int


def grader_rows(course: Path) -> list[GraderRow]:
    """Every submission row of the grader's state (none while it does not exist yet)."""
    watch = Watch(course)
    try:
        rows = watch.query(
            "grader",
            "SELECT student_id, archive_sha256, engine_id, state, run_id FROM submissions"
            " ORDER BY id",
        )
    finally:
        watch.close()
    return [GraderRow(*row) for row in rows]


@dataclass(frozen=True)
class EngineSubmission:
    engine_id: int
    status: int
    archive_sha256: str | None  # hash of the uncompressed tar, as the grader names archives


def engine_submissions(data: Path) -> list[EngineSubmission]:
    """Every submission a local engine holds, from its own SQLite and folders under ``data``."""
    db = connect_readonly(data / "engine.sqlite3")
    if db is None:
        return []
    with contextlib.closing(db):
        rows = db.execute("SELECT id, status FROM submissions ORDER BY id").fetchall()
    found = []
    for engine_id, status in rows:
        source = data / "submissions" / str(engine_id) / "streams" / "source"
        digest = None
        if source.is_file():
            digest = hashlib.sha256(gzip.decompress(source.read_bytes())).hexdigest()
        found.append(EngineSubmission(engine_id, status, digest))
    return found


def output_files(out: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(out.rglob("*")):
        if path.is_file():
            yield path.relative_to(out).as_posix(), path.read_bytes()
