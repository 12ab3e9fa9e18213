"""HTTP requests per graded submission, on a passing run against the local engine.

Plain script (not pytest). Serves the local engine with uvicorn on a free loopback port,
grades N tiny passing submissions the way the pipeline does (gate slot -> create ->
batch-followed wait -> tests report) and prints the requests each one cost.
Goal: at most 3 per submission (create, its share of batch polls, tests report).

    python bench/requests_per_submission.py [--quick] [--students N] [--slots N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import socket
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader.api.client import ClientSettings, ContainersClient
from grader.api.follow import ExecutionGate, SubmissionWatcher

JUNIT = (
    '<?xml version="1.0"?><testsuite name="s" tests="1">'
    '<testcase classname="c" name="test_ok" time="0.0"/></testsuite>'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_project(root: Path) -> Path:
    """One project whose run stage writes a passing JUnit report; test evaluates it."""
    project = root / "projects" / "bench"
    project.mkdir(parents=True)
    run = f"printf '%s' '{JUNIT}' > \"$SE_PATH_UNIT_TESTS_REPORT\""
    config = {
        "version": 2.1,
        "scenarios": {
            "grade": {
                "default": True,
                "network": False,
                "stages": {
                    "init": {"command": None},
                    "build": {"command": None},
                    "run": {"command": run, "timeout": 30},
                    "test": {"command": "se_utils_cli evaluate", "timeout": 30},
                    "post": {"command": None},
                },
            }
        },
        "files": {"read_only": [".sphere-engine"]},
    }
    (project / "config.json").write_text(json.dumps(config))
    return root / "projects"


def workspace_archive(text: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = text.encode()
        info = tarfile.TarInfo("workspace/solution.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def start_engine(root: Path, token: str, slots: int, port: int) -> tuple[object, threading.Thread]:
    import uvicorn

    from grader.engine import EngineConfig
    from grader.engine.app import create_app

    config = EngineConfig(
        projects_dir=make_project(root),
        data_dir=root / "data",
        token=token,
        slots=slots,
        base_url=f"http://127.0.0.1:{port}/api/v1",
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the local engine did not start")
        time.sleep(0.05)
    return server, thread


async def grade_all(url: str, token: str, students: int, concurrency: int) -> dict[str, object]:
    settings = ClientSettings(url, token, requests_per_second=1000.0, concurrency=concurrency)
    async with ContainersClient(settings) as client:
        watcher = SubmissionWatcher(client, timeout=300)
        gate = ExecutionGate(client, concurrency)

        async def one(n: int) -> int:
            async with gate.slot():
                sid = await client.create_submission("bench", workspace_archive(f"x = {n}\n"))
                submission = await watcher.wait(sid)
            report = await client.get_stream(sid, "tests_report")
            assert submission.result.status.name == "ok", submission.result.status
            assert "test_ok" in report
            return sid

        started = time.perf_counter()
        try:
            await asyncio.gather(*(one(n) for n in range(students)))
        finally:
            await watcher.aclose()
        elapsed = time.perf_counter() - started
        kinds = dict(client.counters.by_kind)
        stats_calls = kinds.get("GET /stats", 0)
        per_sub = (client.counters.requests - stats_calls) / students
        return {
            "students": students,
            "concurrency": concurrency,
            "seconds": round(elapsed, 2),
            "requests": client.counters.requests,
            "by_kind": kinds,
            "poll_rounds": watcher.rounds,
            "retries": client.counters.retries,
            "requests_per_submission": round(per_sub, 2),
            "requests_per_submission_with_stats": round(client.counters.requests / students, 2),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 students instead of 40")
    parser.add_argument("--students", type=int, default=None)
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args()
    students = args.students or (8 if args.quick else 40)
    token = secrets.token_urlsafe(16)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="grader-bench-") as tmp:
        server, thread = start_engine(Path(tmp), token, args.slots, port)
        try:
            url = f"http://127.0.0.1:{port}/api/v1"
            result = asyncio.run(grade_all(url, token, students, args.slots))
        finally:
            server.should_exit = True  # type: ignore[attr-defined]
            thread.join(timeout=30)
    print(json.dumps(result, indent=2))
    goal = result["requests_per_submission"]
    print(f"requests per graded submission: {goal} (goal <= 3)")
    return 0 if isinstance(goal, float) and goal <= 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
