"""Execution slots, the queue of waiting submissions and their turns on a slot.

Slots are shared: a submission's running stages and a running workspace each hold one.
Waiting submissions (status 0) hold none. The scheduler starts the oldest ones while
fewer than ``slots + lookahead`` are started: a started submission is prepared (its
folders, its cell, its first stage's sandbox) without a slot, then asks for its turn
(``spec.Turn``); slots are granted in the order submissions started, whenever one is free
(a younger submission that is ready waits for an older one still being prepared, unless
that one stepped aside to wait for something slow: its project's environment being built).
Its runner gives the slot back when its last stage ends, before the folders are taken
down, so a freed slot goes straight to a submission that is ready to run. Workspaces
never wait: without a free slot their creation is refused (409).

Jobs run on the event loop's thread. Turns are asked for and given back on the runners'
threads, and decided right there under the scheduler's lock: a runner that gives its slot
back hands it to the next ready turn itself, without waiting for the event loop, which is
busy with requests when stages end together. Only the store's status change (``on_grant``)
goes to the loop.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable

from grader.engine.spec import Turn

log = logging.getLogger("grader.engine")

Job = Callable[[int], Awaitable[None]]


class Slots:
    """A counter of execution slots: ``total`` in all, ``held`` in use (any thread)."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"slots must be at least 1, not {total}")
        self.total = total
        self.held = 0
        self._lock = threading.Lock()

    @property
    def free(self) -> int:
        return self.total - self.held

    def try_take(self) -> bool:
        """Take a slot if one is free."""
        with self._lock:
            if self.held >= self.total:
                return False
            self.held += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self.held <= 0:
                raise RuntimeError("released a slot nobody held")
            self.held -= 1


class Scheduler:
    """Runs ``job(submission_id)`` for queued ids, oldest first, ``lookahead`` of them
    ahead of a free slot; ``on_grant(submission_id)`` runs when one gets its slot."""

    def __init__(
        self,
        slots: Slots,
        job: Job,
        *,
        lookahead: int = 0,
        on_grant: Callable[[int], None] = lambda submission_id: None,
    ) -> None:
        self.slots = slots
        self.lookahead = lookahead
        self._job = job
        self._on_grant = on_grant
        self._queue: deque[int] = deque()  # the loop's alone, as _tasks
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._lock = threading.Lock()  # the turns' state below, from any thread
        self._turns: dict[int, Turn] = {}
        self._unslotted: list[int] = []  # started, no slot yet, not aside: oldest first
        self._asking: dict[int, Turn] = {}
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def waiting(self) -> tuple[int, ...]:
        return tuple(self._queue)

    @property
    def running(self) -> tuple[int, ...]:
        return tuple(self._tasks)

    def submit(self, submission_id: int) -> None:
        """Queue a submission and start it at once if it may be prepared now."""
        self._queue.append(submission_id)
        self.pump()

    def pump(self) -> None:
        """Grant free slots to waiting turns, then start queued submissions while fewer
        than ``slots + lookahead`` are started (call after a slot is released)."""
        self._loop = asyncio.get_running_loop()
        self._grant()
        while (
            self._queue
            and not self._closed
            and len(self._tasks) < self.slots.total + self.lookahead
        ):
            submission_id = self._queue.popleft()
            with self._lock:
                bisect.insort(self._unslotted, submission_id)
            task = self._loop.create_task(
                self._run(submission_id), name=f"submission-{submission_id}"
            )
            self._tasks[submission_id] = task

    def turn(self, submission_id: int) -> Turn:
        """The turn of a started submission, for its runner thread (made once per job)."""
        self._loop = asyncio.get_running_loop()
        turn = Turn(submission_id, self._ask, self._give_back)
        with self._lock:
            self._turns[submission_id] = turn
        return turn

    def _ask(self, turn: Turn) -> None:
        with self._lock:
            refused = (
                self._closed
                or self._turns.get(turn.submission_id) is not turn
                or (self._loop is not None and self._loop.is_closed())  # the engine is gone
            )
            if not refused:
                if turn.submission_id not in self._unslotted:  # back from stepping aside
                    bisect.insort(self._unslotted, turn.submission_id)
                self._asking[turn.submission_id] = turn
        if refused:
            turn.abort()  # the engine is stopping (or the job already ended)
        else:
            self._grant()

    def step_aside(self, submission_id: int) -> None:
        """Let younger submissions have slots before this started one, until it asks for
        its turn (it waits for something slow first)."""
        with self._lock:
            aside = submission_id in self._unslotted
            if aside:
                self._unslotted.remove(submission_id)
        if aside:
            self._grant()

    def _grant(self) -> None:
        """Give free slots to the oldest started turns that ask, in order (any thread)."""
        granted = []
        with self._lock:
            while (
                not self._closed
                and self._unslotted
                and self._unslotted[0] in self._asking
                and self.slots.try_take()
            ):
                turn = self._asking.pop(self._unslotted.pop(0))
                turn.granted = turn.holding = True
                granted.append(turn)
        if not granted:
            return
        if self._on_loop_thread():
            for turn in granted:
                self._on_grant(turn.submission_id)
                turn.grant()
            return
        for turn in granted:  # a runner's thread: the turn goes now, the store after
            turn.grant()
            _call_on(self._loop, self._on_grant, turn.submission_id)

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no loop runs on this thread: a runner's
            return False

    def _give_back(self, turn: Turn) -> None:
        with self._lock:
            holding, turn.holding = turn.holding, False
        if holding:
            self.slots.release()
            self._grant()

    async def _run(self, submission_id: int) -> None:
        try:
            await self._job(submission_id)
        finally:
            self._tasks.pop(submission_id, None)
            with self._lock:
                if submission_id in self._unslotted:  # it ended without asking for a slot
                    self._unslotted.remove(submission_id)
                self._asking.pop(submission_id, None)
                turn = self._turns.pop(submission_id, None)
            if turn is not None:
                turn.abort()  # a runner still waiting (it cannot be: its job has ended)
                self._give_back(turn)
            self.pump()

    def abort_turns(self) -> None:
        """Stopping: no more slots are granted; runners still waiting for one give up."""
        with self._lock:
            self._closed = True
            waiting = [*self._asking.values()]
            waiting += [turn for turn in self._turns.values() if not turn.granted]
            self._asking.clear()
        for turn in waiting:
            turn.abort()

    async def close(self, wait_seconds: float) -> tuple[int, ...]:
        """Start nothing more; wait up to ``wait_seconds`` for running jobs.

        Returns the ids still running after the wait (their jobs are cancelled).
        """
        self.abort_turns()
        tasks = list(self._tasks.values())
        if not tasks:
            return ()
        _, pending = await asyncio.wait(tasks, timeout=wait_seconds)
        stuck = tuple(sid for sid, task in self._tasks.items() if task in pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if stuck:
            log.warning("submissions %s did not stop within %.0f s", stuck, wait_seconds)
        return stuck


def _call_on(loop: asyncio.AbstractEventLoop | None, call: Callable[[int], None], arg: int) -> None:
    """Hand ``call(arg)`` to ``loop`` from another thread (a closed loop: nothing to do,
    the engine has stopped)."""
    if loop is None:
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(call, arg)
