"""Shared pieces of the engine's HTTP-side tests: projects, archives, a clock, a gate.

``GateRunner`` stands in for the sandboxed runner only where a test must decide when a
run ends (slot accounting, cancellation, restarts); it writes real stream files into
the run's ``work_dir`` like the runner does. Tests of real execution use the real runner.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from grader.engine import EngineConfig, inprocess_engine
from grader.engine.spec import STAGE_ORDER, Cancel, RunOutcome, RunSpec, StageOutcome

TOKEN = "engine-app-token-5e1f"
BASE = "http://127.0.0.1:8080/api/v1"

JUNIT = (
    '<?xml version="1.0"?><testsuite name="s" tests="1">'
    '<testcase classname="c" name="test_ok" time="0.0"/></testsuite>'
)


def grading_config(**scenario: Any) -> dict[str, Any]:
    """A project config whose run stage writes a passing JUnit report."""
    run = f"printf '%s' '{JUNIT}' > \"$SE_PATH_UNIT_TESTS_REPORT\""
    body = {
        "default": True,
        "network": False,
        "stages": {
            "run": {"command": run, "timeout": 20},
            "test": {"command": "se_utils_cli evaluate", "timeout": 20},
        },
        **scenario,
    }
    return {
        "version": 2.1,
        "scenarios": {"grade": body},
        "files": {"read_only": [".sphere-engine"]},
    }


def make_project(projects: Path, name: str, config: Mapping[str, Any] | str) -> Path:
    folder = projects / name
    folder.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / "config.json").write_text(text)
    return folder


def make_config(tmp_path: Path, **overrides: Any) -> EngineConfig:
    projects = tmp_path / "projects"
    if not (projects / "p").exists():
        make_project(projects, "p", grading_config())
    values: dict[str, Any] = {
        "projects_dir": projects,
        "data_dir": tmp_path / "data",
        "token": TOKEN,
        "slots": 2,
        "base_url": BASE,
        **overrides,
    }
    return EngineConfig(**values)


def archive(files: Mapping[str, bytes] | None = None) -> bytes:
    """A workspace tar.gz holding ``files`` (paths below workspace/)."""
    files = {"solution.py": b"x = 1\n"} if files is None else files
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"workspace/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class ManualClock:
    """A clock that moves only when told to."""

    now: datetime = field(default_factory=lambda: datetime(2026, 9, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class GateRunner:
    """A runner whose runs wait until released (or cancelled), then report a status."""

    def __init__(self, status: int = 15) -> None:
        self.status = status
        self.started: list[RunSpec] = []
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._release = threading.Semaphore(0)
        self.cancelled: list[int] = []

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self._release.release()

    def __call__(self, spec: RunSpec, cancel: Cancel) -> RunOutcome:
        with self._lock:
            self.started.append(spec)
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            status = self.status
            while not self._release.acquire(timeout=0.01):
                if cancel.is_set():
                    self.cancelled.append(spec.submission_id)
                    status = 20
                    break
            log = spec.work_dir / "debug.log"
            log.write_text("gate runner: " + ("cancelled\n" if status == 20 else "released\n"))
            out = spec.work_dir / "run.out"
            out.write_text(",".join(sorted(p.name for p in spec.upload_dir.iterdir())))
            stages = tuple(
                StageOutcome(name, skipped=name != "run", exit_code=0 if name == "run" else None)
                for name in STAGE_ORDER
            )
            return RunOutcome(
                status=status,
                stages=stages,
                streams={"debug_log": log, "stage_run_output": out},
                score=100.0 if status == 15 else None,
                time=0.25,
                memory=2048,
            )
        finally:
            with self._lock:
                self.running -= 1


@asynccontextmanager
async def engine_client(
    config: EngineConfig, *, runner: Any = None, clock: Any = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client speaking to an in-process engine, the token sent as a query param."""
    async with (
        inprocess_engine(config, runner=runner, clock=clock) as transport,
        httpx.AsyncClient(transport=transport, base_url=BASE + "/") as client,
    ):
        yield client


def q(**params: Any) -> dict[str, Any]:
    """Query parameters with the token added."""
    return {"access_token": TOKEN, **params}


async def submit(client: httpx.AsyncClient, project: str = "p", **form: Any) -> httpx.Response:
    source = form.pop("source", archive())
    files = (
        {"source": ("source.tar.gz", source, "application/gzip")} if source is not None else None
    )
    return await client.post(
        "submissions", params=q(), data={"project_id": project, **form}, files=files
    )


async def wait_final(client: httpx.AsyncClient, sid: int, seconds: float = 30) -> dict[str, Any]:
    """Poll a submission until it is no longer executing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        body: dict[str, Any] = (await client.get(f"submissions/{sid}", params=q())).json()
        if not body["executing"]:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"submission {sid} still executing: {body['result']}")
        await asyncio.sleep(0.01)


async def wait_for(predicate: Any, seconds: float = 10) -> None:
    """Yield to the engine until ``predicate()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
