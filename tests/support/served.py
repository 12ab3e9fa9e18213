"""A real `python -m grader engine serve` process on a free loopback port, its log kept.

Shared by every suite that talks to the engine over a real socket (faults, fuzz, crash,
resume, bad input, CLI); they read the engine's own records (its SQLite, its log) too.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_SECONDS = 30.0


def grader_env() -> dict[str, str]:
    """This process's environment without engine settings, output unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERE_ENGINE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ServedEngine:
    url: str  # the API root, http://127.0.0.1:PORT/api/v1
    token: str
    data_dir: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def last_submission_id(self) -> int:
        """The highest submission id the engine has stored (0 when none)."""
        return self._count("SELECT COALESCE(MAX(id), 0) FROM submissions")

    def submissions_after(self, last_id: int) -> int:
        """How many submissions the engine stored with an id above ``last_id``."""
        return self._count("SELECT COUNT(*) FROM submissions WHERE id > ?", last_id)

    def _count(self, query: str, *args: int) -> int:
        uri = f"file:{self.data_dir / 'engine.sqlite3'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            found: int = db.execute(query, args).fetchone()[0]
            return found


@contextmanager
def served_engine(
    projects: Path, root: Path, *, slots: int = 2, token: str | None = None
) -> Iterator[ServedEngine]:
    """The engine served from ``projects``, data and log under ``root``; stopped on exit."""
    port = free_port()
    token = token or "tok-" + secrets.token_urlsafe(18)  # distinctive: tests grep for it
    data = root / "engine-data"
    log_file = root / "engine.log"
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "grader", "engine", "serve", "--projects", str(projects)]
    command += ["--port", str(port), "--slots", str(slots), "--data", str(data)]
    env = {**grader_env(), "SPHERE_ENGINE_TOKEN": token}
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait_ready(url, process, log_file)
        yield ServedEngine(url, token, data, log_file, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            # asked without the token: a 401 says the engine is up, and nothing logs it
            if httpx.get(f"{url}/test").status_code == 401:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the engine did not start:\n{log_file.read_text()}")
        time.sleep(0.05)
