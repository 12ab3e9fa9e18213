"""Shared pieces of the benchmarks: synthetic courses and a served engine on loopback."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_course(
    root: Path,
    students: int,
    *,
    run_command: str,
    test_command: str | None = None,
    timeout: int = 60,
    slots: int | None = None,
) -> Path:
    """A course of ``students`` plain-folder sources and one project running ``run_command``."""
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
    rows = ["student_id,name"]
    for index in range(students):
        sid = f"s{index:04d}"
        rows.append(f"{sid},Student {index}")
        folder = course / "work" / sid
        folder.mkdir(parents=True)
        (folder / "main.py").write_text(f"print('student {index}')\n")
    (course / "roster.csv").write_text("\n".join(rows) + "\n")
    return course


@dataclass(frozen=True)
class ServedEngine:
    url: str
    token: str
    process: subprocess.Popen[bytes]


@contextmanager
def served_engine(projects: Path, data: Path, *, slots: int) -> Iterator[ServedEngine]:
    """`grader engine serve` in a subprocess on a free loopback port."""
    port = free_port()
    token = secrets.token_urlsafe(16)
    env = {**os.environ, "SPHERE_ENGINE_TOKEN": token}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grader",
            "engine",
            "serve",
            "--projects",
            str(projects),
            "--port",
            str(port),
            "--slots",
            str(slots),
            "--data",
            str(data),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/test", params={"access_token": token}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the engine did not start")
            time.sleep(0.1)
        yield ServedEngine(url, token, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system
