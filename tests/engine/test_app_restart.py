"""Restarts: results survive, interrupted runs end as 20, waiting ones run again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from grader.engine.spec import Cancel, RunOutcome, RunSpec
from grader.engine.store import Store
from tests.engine.appkit import (
    GateRunner,
    ManualClock,
    engine_client,
    make_config,
    q,
    submit,
    wait_final,
    wait_for,
)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def test_results_survive_a_restart_and_ids_keep_counting(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    runner = GateRunner()

    async def first() -> None:
        async with engine_client(config, runner=runner) as client:
            await submit(client)
            runner.release()
            await wait_final(client, 1)

    async def second() -> None:
        async with engine_client(config, runner=GateRunner()) as client:
            body = (await client.get("submissions/1", params=q())).json()
            assert body["result"]["status"]["code"] == 15
            output = await client.get("submissions/1/stage_run_output", params=q())
            assert output.text == "solution.py"
            assert (await submit(client)).json()["id"] == 2

    run(first)
    run(second)


def test_a_stop_cancels_the_running_one_and_the_waiting_one_runs_after_restart(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, slots=1)
    runner = GateRunner()

    async def first() -> None:
        async with engine_client(config, runner=runner) as client:
            await submit(client)
            await submit(client)
            await wait_for(lambda: len(runner.started) == 1)

    async def second() -> None:
        again = GateRunner()
        again.release(5)
        async with engine_client(config, runner=again) as client:
            cancelled = await wait_final(client, 1)
            assert cancelled["result"]["status"]["code"] == 20
            log = await client.get("submissions/1/debug_log", params=q())
            assert "cancelled" in log.text
            rerun = await wait_final(client, 2)
            assert rerun["result"]["status"]["code"] == 15
            assert [spec.submission_id for spec in again.started] == [2]
            assert (await client.get("submissions/2/stage_run_output", params=q())).text == (
                "solution.py"
            )

    run(first)
    assert runner.cancelled == [1]
    run(second)


def test_a_crash_mid_run_ends_as_internal_error_on_restart(tmp_path: Path) -> None:
    config = make_config(tmp_path, slots=2)
    clock = ManualClock()
    # What a killed engine leaves: rows in preparation (1) and execution (3), one waiting.
    store = Store(config.data_dir)
    ids = []
    for status in (3, 1, 0):
        staging = store.new_staging()
        (staging / "streams" / "source").write_bytes(b"gz")
        (staging / "upload" / "solution.py").write_text("x = 1\n")
        sid = store.create_submission(
            project_id="p",
            requested_scenario=None,
            scenario="grade",
            config=(config.projects_dir / "p" / "config.json").read_text(),
            created_at=clock(),
            staging=staging,
            streams={"source": 2},
        )
        store.set_status(sid, status)
        (store.work_dir(sid) / "home").mkdir(parents=True)
        ids.append(sid)
    store.close()
    runner = GateRunner()
    runner.release(5)

    async def go() -> None:
        async with engine_client(config, runner=runner, clock=clock) as client:
            for sid in ids[:2]:
                body = await wait_final(client, sid)
                assert body["result"]["status"] == {"code": 20, "name": "internal error"}
                assert body["executing"] is False
                log = await client.get(f"submissions/{sid}/debug_log", params=q())
                assert "the engine stopped while this submission ran" in log.text
                assert not (config.data_dir / "submissions" / str(sid) / "work").exists()
            waited = await wait_final(client, ids[2])
            assert waited["result"]["status"]["code"] == 15
        assert [spec.submission_id for spec in runner.started] == [ids[2]]
        assert runner.started[0].work_dir.name == "work"

    run(go)


def test_a_runner_that_ignores_cancel_is_recorded_as_internal_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, stop_seconds=0.2)
    stuck = threading.Event()
    entered = threading.Event()

    def deaf(spec: RunSpec, cancel: Cancel) -> RunOutcome:
        entered.set()
        stuck.wait(10)  # ignores cancel until the test lets it go
        return RunOutcome(status=15, stages=(), streams={})

    async def go() -> None:
        async with engine_client(config, runner=deaf) as client:
            await submit(client)
            await wait_for(entered.is_set)

    try:
        run(go)
    finally:
        stuck.set()
    store = Store(config.data_dir)
    record = store.get_submission(1)
    store.close()
    assert record is not None and record.status == 20
    log = (config.data_dir / "submissions" / "1" / "streams" / "debug_log").read_text()
    assert "the runner did not stop when the engine did" in log
