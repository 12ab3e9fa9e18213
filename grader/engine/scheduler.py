"""Execution slots and the queue of waiting submissions.

Slots are shared: a running submission and a running workspace each hold one. Waiting
submissions (status 0) hold none; the scheduler starts the oldest one whenever a slot is
free. Workspaces never wait: without a free slot their creation is refused (409).
Everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger("grader.engine")

Job = Callable[[int], Awaitable[None]]


class Slots:
    """A counter of execution slots: ``total`` in all, ``held`` in use."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"slots must be at least 1, not {total}")
        self.total = total
        self.held = 0

    @property
    def free(self) -> int:
        return self.total - self.held

    def try_take(self) -> bool:
        """Take a slot if one is free."""
        if self.held >= self.total:
            return False
        self.held += 1
        return True

    def release(self) -> None:
        if self.held <= 0:
            raise RuntimeError("released a slot nobody held")
        self.held -= 1


class Scheduler:
    """Runs ``job(submission_id)`` for queued ids, one per free slot, oldest first."""

    def __init__(self, slots: Slots, job: Job) -> None:
        self.slots = slots
        self._job = job
        self._queue: deque[int] = deque()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def waiting(self) -> tuple[int, ...]:
        return tuple(self._queue)

    @property
    def running(self) -> tuple[int, ...]:
        return tuple(self._tasks)

    def submit(self, submission_id: int) -> None:
        """Queue a submission and start it at once if a slot is free."""
        self._queue.append(submission_id)
        self.pump()

    def pump(self) -> None:
        """Start queued submissions while slots are free (call after a slot is released)."""
        while self._queue and not self._closed and self.slots.try_take():
            submission_id = self._queue.popleft()
            task = asyncio.get_running_loop().create_task(
                self._run(submission_id), name=f"submission-{submission_id}"
            )
            self._tasks[submission_id] = task

    async def _run(self, submission_id: int) -> None:
        try:
            await self._job(submission_id)
        finally:
            self._tasks.pop(submission_id, None)
            self.slots.release()
            self.pump()

    async def close(self, wait_seconds: float) -> tuple[int, ...]:
        """Start nothing more; wait up to ``wait_seconds`` for running jobs.

        Returns the ids still running after the wait (their jobs are cancelled).
        """
        self._closed = True
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
