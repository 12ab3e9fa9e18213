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


class TimedEngine:
    """Each submission waits, executes from ``start`` and is final from ``end`` (an
    injected clock); a final one reports its run stage's time. Records every poll."""

    def __init__(self, now: list[float], runs: dict[int, tuple[float, float]]) -> None:
        self.now = now
        self.runs = runs
        self.polls: list[float] = []
        self.final_seen: dict[int, float] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.polls.append(self.now[0])
        ids = [int(i) for i in request.url.params["ids"].split(",")]
        return httpx.Response(200, json={"items": [self.item(i) for i in ids]})

    def item(self, sid: int) -> dict[str, Any]:
        start, end = self.runs[sid]
        if self.now[0] >= end:
            self.final_seen.setdefault(sid, self.now[0])
            stages = {"run": {"time": end - start}}
            return {
                "id": sid,
                "executing": False,
                "result": {"status": {"code": 15}},
                "stages": stages,
            }
        code = 3 if self.now[0] >= start else 0
        return {"id": sid, "executing": True, "result": {"status": {"code": code}}}


def timed_run(
    url: str, runs: dict[int, tuple[float, float]], late: dict[float, int] | None = None
) -> tuple[TimedEngine, list[float]]:
    """Wait for every submission of ``runs`` from time 0 (and for ``late[t]`` from ``t``)."""
    now = [0.0]
    engine = TimedEngine(now, runs)
    sleeps: list[float] = []
    joined: list[asyncio.Future[Submission]] = []

    watchers: list[SubmissionWatcher] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        for moment, sid in (late or {}).items():
            if now[0] < moment <= now[0] + seconds:
                joined.append(asyncio.ensure_future(watchers[0].wait(sid)))
                await asyncio.sleep(0)
        now[0] += seconds
        await asyncio.sleep(0)

    async def go() -> None:
        client = ContainersClient(
            _settings(url, requests_per_second=1000.0), transport=httpx.MockTransport(engine)
        )
        async with client:
            watcher = SubmissionWatcher(client, timeout=60, clock=lambda: now[0], sleep=sleep)
            watchers.append(watcher)
            first = [sid for sid in runs if sid not in (late or {}).values()]
            try:
                await asyncio.gather(*(watcher.wait(sid) for sid in first))
                await asyncio.gather(*joined)
            finally:
                await watcher.aclose()

    run(go())
    return engine, sleeps


LOCAL = "http://127.0.0.1:8080/api/v1"
REMOTE = "https://x.containers.sphere-engine.com/api/v1"


def test_locally_the_last_submission_is_polled_when_it_should_end() -> None:
    # one slot: 1 runs 0-1 s, 2 waits behind it and runs 1-2.05 s
    engine, _ = timed_run(LOCAL, {1: (0.0, 1.0), 2: (1.0, 2.05)})
    # the regular schedule (0.5 s by then) would see it final at about 2.54 s
    assert engine.final_seen[2] - 2.05 <= 0.05 + 1e-9
    # the early polls begin where its end was first possible: 1 s after it was last seen waiting
    assert len(engine.polls) <= 18


def test_no_early_poll_while_a_submission_waits_in_the_engine() -> None:
    # one slot, three in turn: until 3 starts (at 2 s) there is always one waiting
    engine, sleeps = timed_run(LOCAL, {1: (0.0, 1.0), 2: (1.0, 2.0), 3: (2.0, 3.05)})
    before_three = [t for t in engine.polls if t < 2.0]
    regular = [0.05 * 1.5**q for q in range(20)]
    expected = [min(0.5, gap) for gap in regular]
    assert sleeps[: len(before_three)] == pytest.approx(expected[: len(before_three)])
    assert engine.final_seen[3] - 3.05 <= 0.05 + 1e-9


def test_a_new_submission_during_an_early_pause_brings_the_regular_interval_back() -> None:
    # 1 runs 0-1 s, then 2 runs 1-2.05 s alone; 9 arrives at 1.6 s, into the early pause
    runs = {1: (0.0, 1.0), 2: (1.0, 2.05), 9: (5.0, 5.5)}
    engine, sleeps = timed_run(LOCAL, runs, late={1.6: 9})
    # woken early at 1.66 s (1 s after 2 was last seen waiting), it finds 9 not yet seen
    # executing: it sleeps the rest of its 0.5 s and polls on the regular schedule
    at = sleeps.index(pytest.approx(0.12, abs=0.001))
    assert sleeps[at + 1] == pytest.approx(0.38, abs=0.001)
    assert engine.final_seen[2] == pytest.approx(2.539, abs=0.001)
    assert engine.final_seen[9] >= 5.5


def test_the_cloud_keeps_its_regular_schedule() -> None:
    engine, sleeps = timed_run(REMOTE, {1: (0.0, 1.0), 2: (1.0, 2.05)})
    assert sleeps == [2.0, 3.0]  # 2 s then 3 s: both final at the second poll
    assert engine.polls == [2.0, 5.0]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _settings(url: str, **kw: Any) -> Any:
    from grader.api.client import ClientSettings

    return ClientSettings(url, "t", **kw)
