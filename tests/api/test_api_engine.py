"""The client against the real local engine: in-process (ASGITransport) and over a socket.

Skipped until ``grader.engine`` provides ``inprocess_engine``/``create_app``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.api.client import ClientSettings, ContainersClient
from grader.api.follow import ExecutionGate, SubmissionWatcher
from grader.errors import NotFoundError, UnauthorizedError

engine = pytest.importorskip("grader.engine")
if not hasattr(engine, "inprocess_engine"):
    pytest.skip("local engine not available yet", allow_module_level=True)

pytestmark = pytest.mark.sandbox

TOKEN = "engine-test-token-9d8c"
JUNIT = (
    '<?xml version="1.0"?><testsuite name="s" tests="1">'
    '<testcase classname="c" name="test_ok" time="0.0"/></testsuite>'
)


def make_config(tmp_path: Path, base_url: str = "http://127.0.0.1:8080/api/v1") -> Any:
    project = tmp_path / "projects" / "p"
    project.mkdir(parents=True)
    run = f"printf '%s' '{JUNIT}' > \"$SE_PATH_UNIT_TESTS_REPORT\""
    stages = {
        "init": {"command": None},
        "build": {"command": None},
        "run": {"command": run, "timeout": 20},
        "test": {"command": "se_utils_cli evaluate", "timeout": 20},
        "post": {"command": None},
    }
    config = {
        "version": 2.1,
        "scenarios": {"grade": {"default": True, "network": False, "stages": stages}},
        "files": {"read_only": [".sphere-engine"]},
    }
    (project / "config.json").write_text(json.dumps(config))
    return engine.EngineConfig(
        projects_dir=tmp_path / "projects",
        data_dir=tmp_path / "data",
        token=TOKEN,
        slots=2,
        base_url=base_url,
    )


def archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("workspace/solution.py")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"x = 1\n"))
    return buf.getvalue()


async def grade_three(client: ContainersClient) -> None:
    assert await client.test()
    stats = await client.stats()
    assert stats.all >= 1
    watcher = SubmissionWatcher(client, timeout=60)
    gate = ExecutionGate(client, 4)

    async def one() -> None:
        async with gate.slot():
            sid = await client.create_submission("p", archive())
            sub = await watcher.wait(sid)
        assert sub.final and sub.result.status.code == 15, sub.result.status
        assert set(sub.stages) <= {"init", "build", "run", "test", "post"}
        assert "test_ok" in await client.get_stream(sid, "tests_report")

    try:
        await asyncio.gather(one(), one(), one())
    finally:
        await watcher.aclose()
    with pytest.raises(NotFoundError):
        await client.get_submission(10**9)


def test_grades_against_the_engine_in_process(tmp_path: Path) -> None:
    async def go() -> None:
        async with engine.inprocess_engine(make_config(tmp_path)) as transport:
            settings = ClientSettings("http://127.0.0.1:8080/api/v1", TOKEN)
            async with ContainersClient(settings, transport=transport) as client:
                await grade_three(client)
            bad = ClientSettings("http://127.0.0.1:8080/api/v1", "wrong")
            async with ContainersClient(bad, transport=transport) as client:
                with pytest.raises(UnauthorizedError):
                    await client.test()

    asyncio.run(go())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    import uvicorn

    from grader.engine.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1"
    app = create_app(make_config(tmp_path, url))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_grades_against_the_engine_over_a_socket(served: str) -> None:
    async def go() -> None:
        async with ContainersClient(ClientSettings(served, TOKEN)) as client:
            await grade_three(client)

    asyncio.run(go())


def test_the_create_form_reaches_the_engine_as_sent(tmp_path: Path) -> None:
    # the client writes the multipart body itself: values with quotes, line breaks and
    # non-ASCII, and the archive's bytes, arrive as they were
    config = make_config(tmp_path)
    stages = {"run": {"command": "cat solution.py", "timeout": 20}}
    override = {"scenarios": {'n\u00e9e "2"\r\n--x': {"default": True, "stages": stages}}}
    text = json.dumps(override, ensure_ascii=False, indent=1)

    async def go() -> None:
        async with (
            engine.inprocess_engine(config) as transport,
            ContainersClient(
                ClientSettings("http://127.0.0.1:8080/api/v1", TOKEN), transport=transport
            ) as client,
        ):
            sid = await client.create_submission("p", archive(), project_config=text)
            watcher = SubmissionWatcher(client, timeout=60)
            try:
                done = await watcher.wait(sid)
            finally:
                await watcher.aclose()
            assert done.result.status.code == 15, done.result.status
            assert done.scenario == 'n\u00e9e "2"\r\n--x'
            assert await client.get_stream(sid, "stage_run_output") == "x = 1\n"

    asyncio.run(go())


def test_the_watcher_learns_stage_lengths_from_the_engine_in_process(tmp_path: Path) -> None:
    # one slot, three submissions at once: two wait in the engine's queue while one runs;
    # the watcher's forecast (an engine on this machine) reads the statuses and, from each
    # result, its stage time
    config = dataclasses.replace(make_config(tmp_path), slots=1)
    stages = {"run": {"command": "sleep 0.3", "timeout": 20}}
    override = json.dumps({"scenarios": {"s": {"default": True, "stages": stages}}})

    async def go() -> None:
        async with (
            engine.inprocess_engine(config) as transport,
            ContainersClient(
                ClientSettings("http://127.0.0.1:8080/api/v1", TOKEN), transport=transport
            ) as client,
        ):
            watcher = SubmissionWatcher(client, timeout=60)
            assert watcher.forecast is not None
            seen: list[tuple[int, int]] = []
            spied = watcher.forecast.seen

            def spy(submission: Any, asked: float, answered: float) -> None:
                seen.append((submission.id, submission.result.status.code))
                spied(submission, asked, answered)

            watcher.forecast.seen = spy  # type: ignore[method-assign]
            ids = [
                await client.create_submission("p", archive(), project_config=override)
                for _ in range(3)
            ]
            try:
                done = await asyncio.gather(*(watcher.wait(sid) for sid in ids))
            finally:
                await watcher.aclose()
            assert [d.result.status.code for d in done] == [15, 15, 15]
            times = sorted(d.stages["run"].time or 0.0 for d in done)
            assert sorted(watcher.forecast.lengths) == times and times[0] >= 0.3
            assert watcher.forecast.starts == {}  # nothing left of the finished ones
            # the last one was seen waiting its turn behind the others, then final
            assert any(sid == ids[-1] and code < 10 for sid, code in seen)
            assert (ids[-1], 15) in seen

    asyncio.run(go())


def test_a_configured_interval_or_a_remote_engine_gets_no_forecast() -> None:
    async def go() -> list[bool]:
        local = ContainersClient(ClientSettings("http://127.0.0.1:8080/api/v1", TOKEN))
        fixed = ContainersClient(
            ClientSettings("http://127.0.0.1:8080/api/v1", TOKEN, poll_interval=1.0)
        )
        remote = ContainersClient(ClientSettings("https://x.containers.sphere-engine.com", TOKEN))
        try:
            return [SubmissionWatcher(c).forecast is not None for c in (local, fixed, remote)]
        finally:
            for c in (local, fixed, remote):
                await c.aclose()

    assert asyncio.run(go()) == [True, False, False]
