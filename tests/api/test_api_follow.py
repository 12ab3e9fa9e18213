"""SubmissionWatcher batching and deadlines, ExecutionGate limits, with injected time."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from grader.api.client import ContainersClient
from grader.api.follow import ExecutionGate, PollSchedule, SubmissionWatcher
from grader.api.models import Submission
from grader.errors import NotFoundError, SubmissionTimeoutError
from tests.api.apifakes import Sleeps, make_client


class FakeEngine:
    """Submissions become final after ``rounds_to_finish`` batch polls."""

    def __init__(self, rounds_to_finish: int = 2, missing: frozenset[int] = frozenset()) -> None:
        self.rounds_to_finish = rounds_to_finish
        self.missing = missing
        self.polls: dict[int, int] = {}
        self.batch_calls = 0
        self.free = 3
        self.all = 4

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/stats"):
            slots = {"all": self.all, "free": self.free}
            return httpx.Response(200, json={"workspace_slots": slots})
        if path.endswith("/submissions"):
            self.batch_calls += 1
            ids = [int(i) for i in request.url.params["ids"].split(",")]
            return httpx.Response(
                200, json={"items": [self.item(i) for i in ids if i not in self.missing]}
            )
        return httpx.Response(404, json={"message": "submission not found", "error_code": 1001})

    def item(self, sid: int) -> dict[str, Any]:
        self.polls[sid] = self.polls.get(sid, 0) + 1
        done = self.polls[sid] >= self.rounds_to_finish
        code = 15 if done else 3
        return {"id": sid, "executing": not done, "result": {"status": {"code": code}}}


def test_45_ids_are_polled_in_three_batch_calls_per_round() -> None:
    engine = FakeEngine(rounds_to_finish=2)
    sleeps = Sleeps()

    async def go() -> list[Submission]:
        async with make_client(engine, sleeps) as c:
            watcher = SubmissionWatcher(c, timeout=60)
            try:
                return await asyncio.gather(*(watcher.wait(i) for i in range(1, 46)))
            finally:
                await watcher.aclose()

    subs = run(go())
    assert [s.id for s in subs] == list(range(1, 46)) and all(s.final for s in subs)
    assert engine.batch_calls == 6  # 2 rounds x 3 calls


def test_interval_adapts_fast_locally_and_slow_for_the_cloud() -> None:
    async def schedules() -> tuple[PollSchedule, PollSchedule, PollSchedule]:
        local = ContainersClient(_settings("http://127.0.0.1:8080/api/v1"))
        remote = ContainersClient(_settings("https://x.containers.sphere-engine.com/api/v1"))
        fixed = ContainersClient(_settings("http://127.0.0.1/api/v1", poll_interval=1.5))
        try:
            return (
                PollSchedule.for_client(local, None),
                PollSchedule.for_client(remote, None),
                PollSchedule.for_client(fixed, None),
            )
        finally:
            for c in (local, remote, fixed):
                await c.aclose()

    local, remote, fixed = run(schedules())
    assert local.interval(0) == 0.05 and local.interval(50) == 0.5
    assert remote.interval(0) == 2.0 and remote.interval(50) == 5.0
    assert fixed.interval(0) == fixed.interval(9) == 1.5


def test_watcher_uses_the_adaptive_interval_between_rounds() -> None:
    engine = FakeEngine(rounds_to_finish=4)
    sleeps = Sleeps()

    async def go() -> None:
        async with make_client(engine, sleeps) as c:
            watcher = SubmissionWatcher(c, timeout=60)
            await watcher.wait(1)
            await watcher.aclose()

    run(go())
    assert sleeps.waits == [2.0, 3.0, 4.5, 5.0]  # a remote URL: 2 s growing to 5 s


def test_submission_past_its_deadline_times_out() -> None:
    engine = FakeEngine(rounds_to_finish=10**6)
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def go() -> None:
        async with make_client(engine, Sleeps()) as c:
            watcher = SubmissionWatcher(c, timeout=30, clock=lambda: now[0], sleep=sleep)
            try:
                await watcher.wait(7)
            finally:
                await watcher.aclose()

    with pytest.raises(SubmissionTimeoutError) as info:
        run(go())
    assert info.value.submission_id == 7 and 30 <= now[0] <= 35


def test_each_wait_can_have_its_own_deadline() -> None:
    engine = FakeEngine(rounds_to_finish=10**6)
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0)  # let the waiter whose deadline passed run

    async def go() -> tuple[float, str]:
        async with make_client(engine, Sleeps()) as c:
            watcher = SubmissionWatcher(c, timeout=300, clock=lambda: now[0], sleep=sleep)
            longer = asyncio.ensure_future(watcher.wait(8))
            try:
                await watcher.wait(7, 12)
            except SubmissionTimeoutError as exc:
                assert not longer.done()
                return now[0], str(exc)
            finally:
                await watcher.aclose()
            raise AssertionError("the short wait did not time out")

    when, message = run(go())
    assert 12 <= when <= 22 and message == "submission 7 not final after 12 s"


def test_id_missing_from_batch_reaches_its_waiter_as_not_found() -> None:
    engine = FakeEngine(rounds_to_finish=1, missing=frozenset({5}))

    async def go() -> tuple[Submission, BaseException | Submission]:
        async with make_client(engine, Sleeps()) as c:
            watcher = SubmissionWatcher(c, timeout=60)
            ok, lost = await asyncio.gather(
                watcher.wait(4), watcher.wait(5), return_exceptions=True
            )
            await watcher.aclose()
            assert isinstance(ok, Submission)
            return ok, lost

    ok, lost = run(go())
    assert ok.id == 4 and isinstance(lost, NotFoundError)


def gate_peak(engine: FakeEngine, concurrency: int) -> int:
    async def go() -> int:
        async with make_client(engine, Sleeps()) as c:
            gate = ExecutionGate(c, concurrency)

            async def job() -> None:
                async with gate.slot():
                    await asyncio.sleep(0.001)

            await asyncio.gather(*(job() for _ in range(20)))
            return gate.peak

    return run(go())


def test_gate_allows_at_most_min_of_concurrency_and_free_slots() -> None:
    engine = FakeEngine()
    engine.all, engine.free = 200, 3  # a big shared engine: extra ones would execute at once
    assert gate_peak(engine, 8) == 3
    engine.free = 100
    assert gate_peak(engine, 5) == 5


def test_gate_queues_one_behind_each_execution_when_the_engine_caps_itself() -> None:
    engine = FakeEngine()
    engine.all, engine.free = 4, 3  # 4 slots <= concurrency 8: the engine never runs more
    assert gate_peak(engine, 8) == 6  # 3 executing, 3 waiting in the engine's queue


def test_gate_wakes_one_waiter_per_freed_slot() -> None:
    engine = FakeEngine()
    engine.all, engine.free = 200, 1  # one slot: every other job waits its turn

    async def go() -> tuple[int, int]:
        async with make_client(engine, Sleeps()) as c:
            gate = ExecutionGate(c, 8)

            async def job() -> None:
                async with gate.slot():
                    await asyncio.sleep(0.001)

            await asyncio.gather(*(job() for _ in range(60)))
            return gate.peak, gate.waits

    peak, waits = run(go())
    assert peak == 1
    assert waits < 2 * 60  # each waits about once; waking all at each release: ~60 * 60 / 2


def test_gate_rereads_stats_and_always_lets_one_run() -> None:
    engine = FakeEngine()
    engine.free = 0
    now = [0.0]

    async def go() -> tuple[int, int]:
        async with make_client(engine, Sleeps()) as c:
            gate = ExecutionGate(c, 2, refresh=10, clock=lambda: now[0])
            async with gate.slot():
                first = gate.peak
            engine.free = 5
            now[0] = 20.0

            async def job() -> None:
                async with gate.slot():
                    await asyncio.sleep(0.001)

            await asyncio.gather(*(job() for _ in range(6)))
            return first, gate.peak

    assert run(go()) == (1, 2)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _settings(url: str, **kw: Any) -> Any:
    from grader.api.client import ClientSettings

    return ClientSettings(url, "t", **kw)
