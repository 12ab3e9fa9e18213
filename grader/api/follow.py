"""Following many submissions cheaply, and not running more at once than the engine can.

``SubmissionWatcher``: every ``wait(id)`` joins one background loop that asks for all
watched ids together (``GET /submissions?ids=``, 20 per call), at an interval that
starts fast and slows down to a ceiling while the loop runs; against an engine on this
machine, sooner when the last submissions are expected to end (``EndForecast``).
``ExecutionGate``: at most
``min(concurrency, free slots)`` submissions executing at once, ``/stats`` re-read as
the run goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from grader.api.client import MAX_IDS_PER_CALL, ContainersClient, Sleep
from grader.api.faults import is_transient
from grader.api.models import StatusCode, Submission
from grader.config import DEFAULT_SUBMISSION_TIMEOUT
from grader.errors import EngineError, SubmissionTimeoutError

log = logging.getLogger("grader.api")

Clock = Callable[[], float]

LOCAL_INTERVALS = (0.05, 0.5)
REMOTE_INTERVALS = (2.0, 5.0)
GROWTH = 1.5


@dataclass(frozen=True)
class PollSchedule:
    """Interval after ``quiet`` rounds of one polling loop: grows to a ceiling."""

    first: float
    ceiling: float

    def interval(self, quiet: int) -> float:
        return min(self.ceiling, self.first * GROWTH**quiet)

    @classmethod
    def for_client(cls, client: ContainersClient, interval: float | None) -> PollSchedule:
        fixed = interval if interval is not None else client.settings.poll_interval
        if fixed is not None:
            return cls(fixed, fixed)
        low, high = LOCAL_INTERVALS if client.settings.is_local else REMOTE_INTERVALS
        return cls(low, high)


@dataclass
class _Start:
    """When a watched submission started executing: after ``after``, before ``before``."""

    after: float  # when it was last known not to execute: its wait began, or a poll
    before: float | None = None  # the poll that first saw it executing


class EndForecast:
    """When the submissions executing on an engine on this machine should end.

    While a watched submission still waits in the engine's queue, a freed slot takes it
    at once and a result noticed one interval late costs nothing. Once every watched one
    is executing (the last ones of a run), each interval is time lost at the end: the
    watcher then polls when one is expected to end. Its start lies between the last poll
    that saw it waiting and the first that saw it executing; its length is the median
    stage time of the last results. Polls come every ``gap`` across that window, then
    less and less often past it (each one waits as long as the submission is late), up
    to ``ceiling``.
    """

    def __init__(self, gap: float, ceiling: float) -> None:
        self.gap = gap
        self.ceiling = ceiling
        self.lengths: deque[float] = deque(maxlen=16)
        self.starts: dict[int, _Start] = {}

    def watching(self, sid: int, now: float) -> None:
        self.starts.setdefault(sid, _Start(now))

    def forget(self, sid: int) -> None:
        self.starts.pop(sid, None)

    def seen(self, submission: Submission, asked: float, answered: float) -> None:
        """What one poll (sent at ``asked``, answered at ``answered``) said of a submission."""
        if submission.final:
            length = _length(submission)
            if length is not None:
                self.lengths.append(length)
            return
        start = self.starts.get(submission.id)
        if start is None:
            return
        if submission.result.status.code == StatusCode.EXECUTION:
            if start.before is None:
                start.before = answered
        else:
            start.after, start.before = asked, None

    def next_poll(self, now: float, watched: Iterable[int]) -> float | None:
        """When to poll next; None while one of ``watched`` is not known to execute."""
        if not self.lengths:
            return None
        length = statistics.median_low(self.lengths)
        soonest: float | None = None
        for sid in watched:
            start = self.starts.get(sid)
            if start is None or start.before is None:
                return None
            first, last = start.after + length, start.before + length
            if now < first:
                due = first
            elif now <= last:
                due = now + self.gap
            else:
                due = now + min(self.ceiling, max(self.gap, now - last))
            soonest = due if soonest is None else min(soonest, due)
        return soonest


def _length(submission: Submission) -> float | None:
    """Seconds a final submission's stages took, as the engine reports them."""
    times = [stage.time for stage in submission.stages.values() if stage.time]
    total = sum(times) if times else (submission.result.time or 0.0)
    return total if total > 0 else None


@dataclass
class _Watch:
    future: asyncio.Future[Submission]
    deadline: float
    seconds: float  # the wait's length, for the timeout's message


class SubmissionWatcher:
    """Waits for submissions to be final, polling all of them together."""

    def __init__(
        self,
        client: ContainersClient,
        *,
        interval: float | None = None,
        timeout: float = DEFAULT_SUBMISSION_TIMEOUT.total_seconds(),
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        self.client = client
        self.schedule = PollSchedule.for_client(client, interval)
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep or client.sleep
        self.rounds = 0
        self._watches: dict[int, list[_Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._quiet = 0
        adaptive = interval is None and client.settings.poll_interval is None
        self.forecast = (
            EndForecast(self.schedule.first, self.schedule.ceiling)
            if adaptive and client.settings.is_local
            else None
        )

    async def wait(self, submission_id: int, seconds: float | None = None) -> Submission:
        """The submission once final; SubmissionTimeoutError after ``seconds`` (the
        watcher's ``timeout`` when None)."""
        future: asyncio.Future[Submission] = asyncio.get_running_loop().create_future()
        seconds = self.timeout if seconds is None else seconds
        watch = _Watch(future, self.clock() + seconds, seconds)
        self._watches.setdefault(submission_id, []).append(watch)
        if self.forecast is not None:
            self.forecast.watching(submission_id, self.clock())
        if self._task is None or self._task.done():
            # The interval keeps growing across loop restarts: between two waves of a
            # run the loop briefly has nothing to watch, and starting fast again each
            # wave multiplies the polls.
            self._task = asyncio.create_task(self._run(), name="submission-watcher")
        try:
            return await future
        finally:
            self._forget(submission_id, watch)

    async def aclose(self) -> None:
        """Stop the loop; pending waits are cancelled."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for watches in self._watches.values():
            for watch in watches:
                watch.future.cancel()

    async def _run(self) -> None:
        try:
            while self._watches:
                await self._pause(self.schedule.interval(self._quiet))
                await self._poll_round()
                # The interval only grows while the loop lives: resetting it on every new
                # or finished submission keeps a busy run polling at the fastest rate,
                # which costs more requests than it saves latency.
                self._quiet += 1
        except BaseException as exc:
            # Never leave a waiter hanging on a loop that died.
            for watches in list(self._watches.values()):
                for watch in watches:
                    if not watch.future.done():
                        watch.future.set_exception(exc)
            raise

    async def _pause(self, interval: float) -> None:
        """Sleep ``interval``, or less when the forecast expects a result sooner."""
        now = self.clock()
        due = self.forecast.next_poll(now, self._watches) if self.forecast else None
        if due is None or due - now >= interval:
            await self.sleep(interval)
            return
        early = max(0.0, due - now)
        await self.sleep(early)
        if self.forecast and self.forecast.next_poll(self.clock(), self._watches) is None:
            # a submission created meanwhile waits in the engine: the regular interval holds
            await self.sleep(interval - early)

    async def _poll_round(self) -> int:
        """One round over every watched id; returns how many waits it settled."""
        self.rounds += 1
        ids = sorted(self._watches)
        settled = 0
        for start in range(0, len(ids), MAX_IDS_PER_CALL):
            chunk = ids[start : start + MAX_IDS_PER_CALL]
            asked = self.clock()
            try:
                answers = await self.client.get_submissions(chunk)
            except EngineError as exc:
                settled += self._fail_unless_passing(chunk, exc)
                continue
            if self.forecast is not None:
                answered = self.clock()
                for answer in answers:
                    self.forecast.seen(answer, asked, answered)
            settled += await self._settle(chunk, {s.id: s for s in answers})
        return settled + self._expire()

    async def _settle(self, chunk: list[int], answers: dict[int, Submission]) -> int:
        settled = 0
        for sid in chunk:
            found = answers.get(sid)
            if found is None:
                # Absent from the batch: ask alone, so a 404 reaches its waiter as such.
                try:
                    found = await self.client.get_submission(sid)
                except EngineError as exc:
                    settled += self._fail_unless_passing([sid], exc)
                    continue
            if found.final:
                settled += self._resolve(sid, found)
        return settled

    def _resolve(self, sid: int, submission: Submission) -> int:
        count = 0
        for watch in self._drop(sid):
            if not watch.future.done():
                watch.future.set_result(submission)
                count += 1
        return count

    def _fail_unless_passing(self, ids: list[int], exc: EngineError) -> int:
        """A poll that failed after the client's own retries.

        A passing fault (rate limit, 5xx, a dropped connection) says nothing about the
        submissions: they keep running on the engine, so their waits go on and are polled
        again next round, until each one's own deadline. Giving up on them here would make
        the pipeline create every one of them again.
        """
        if is_transient(exc, polling=True):
            log.warning("polling %d submission(s) failed, trying again: %s", len(ids), exc)
            return 0
        return self._fail(ids, exc)

    def _fail(self, ids: list[int], exc: EngineError) -> int:
        count = 0
        for sid in ids:
            for watch in self._drop(sid):
                if not watch.future.done():
                    watch.future.set_exception(exc)
                    count += 1
        return count

    def _expire(self) -> int:
        now = self.clock()
        count = 0
        for sid, watches in list(self._watches.items()):
            for watch in [w for w in watches if w.deadline <= now]:
                if not watch.future.done():
                    message = f"submission {sid} not final after {watch.seconds:g} s"
                    watch.future.set_exception(SubmissionTimeoutError(message, submission_id=sid))
                    count += 1
                self._forget(sid, watch)
        return count

    def _drop(self, sid: int) -> list[_Watch]:
        """Stop watching ``sid``; its waits, for the caller to settle."""
        if self.forecast is not None:
            self.forecast.forget(sid)
        return self._watches.pop(sid, [])

    def _forget(self, sid: int, watch: _Watch) -> None:
        watches = self._watches.get(sid)
        if watches is None:
            return
        if watch in watches:
            watches.remove(watch)
        if not watches:
            del self._watches[sid]
            if self.forecast is not None:
                self.forecast.forget(sid)


class ExecutionGate:
    """At most ``min(concurrency, slots)`` submissions executing at once.

    Slots are what ``/stats`` reports free plus the ones this gate already holds
    (its own submissions occupy slots too). At least one may always run: an engine with
    no free slot queues the submission rather than refusing it.

    When the engine has no more slots than ``concurrency`` in all, the engine itself
    keeps executions within the limit, so the gate lets one more submission wait in the
    engine's queue behind each executing one: it starts the moment a slot frees, not a
    poll interval and an upload later (pipeline efficiency 0.64 -> 0.94 of ideal in
    bench/pipeline_efficiency.py). An engine with more slots than ``concurrency`` would
    execute the extra ones at once, so there the gate admits ``limit`` only.
    """

    def __init__(
        self,
        client: ContainersClient,
        concurrency: int,
        *,
        refresh: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.concurrency = max(1, concurrency)
        self.refresh = refresh
        self.clock = clock
        self.active = 0
        self.peak = 0
        self.waits = 0  # times a submission found no free slot and waited
        self._capacity: int | None = None
        self._slots_all = 0
        self._read_at = float("-inf")
        self._cond = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one execution slot for the body."""
        async with self._cond:
            while self.active >= (limit := await self._limit()):
                self.waits += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.refresh):  # then /stats is read again
                        await self._cond.wait()
            self.active += 1
            self.peak = max(self.peak, self.active)
            if self.active < limit:  # room left (a fresh /stats may have made some): pass it on
                self._cond.notify(1)
        try:
            yield
        finally:
            async with self._cond:
                self.active -= 1
                # one slot freed, one waiter woken: waking all of them (hundreds in a big
                # run) to find one slot cost more grader CPU than the HTTP requests
                self._cond.notify(1)

    async def _limit(self) -> int:
        if self._capacity is None or self.clock() - self._read_at >= self.refresh:
            try:
                stats = await self.client.stats()
            except EngineError as exc:
                if not is_transient(exc, polling=True):
                    raise
                # /stats is advice: without it, keep the last reading (or the configured
                # concurrency) rather than stopping the run
                log.warning("slot count unavailable, using the last known: %s", exc)
                self._read_at = self.clock()
                self._capacity = self._capacity if self._capacity is not None else self.concurrency
                return max(1, min(self.concurrency, self._capacity))
            self._read_at = self.clock()
            self._capacity = self.active + stats.free
            self._slots_all = stats.all
            log.debug("slots: %d free of %d, %d held here", stats.free, stats.all, self.active)
        executing = max(1, min(self.concurrency, self._capacity))
        engine_caps_it = 0 < self._slots_all <= self.concurrency
        return 2 * executing if engine_caps_it else executing
