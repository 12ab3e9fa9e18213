"""Work the engine does off its stages' path: one daemon thread, jobs in the order given.

What a stage needs made before it starts (its cgroups, ``cgroups._Ahead``) and what it
leaves to take down (its emptied cgroups, its ``/tmp`` mounts, ``tmpfs.capped``) costs
tenths of a millisecond each, which every stage waited for. ``later`` hands such a job
to this thread instead: a stage asks for it once it has started (and its thread only
waits) or once it has ended.

A job that raises is logged; the next still runs. A forked engine drops its parent's
pending jobs (they are its parent's to do) and starts a thread of its own when it first
needs one. When the engine process ends, what is pending is done first (``finish``), so
no mount or cgroup outlives it because of this thread; a killed engine's leftovers are
swept by the next engine process, as ever.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], object]


class _Worker:
    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None
        self.busy = False

    def later(self, job: Job) -> None:
        with self.changed:
            self.jobs.append(job)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="behind", daemon=True)
                self.thread.start()
            self.changed.notify_all()

    def _next(self) -> Job:
        with self.changed:
            self.busy = False
            self.changed.notify_all()
            while not self.jobs:
                self.changed.wait()
            self.busy = True
            return self.jobs.popleft()

    def _run(self) -> None:
        while True:
            _do(self._next())

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or running; whether it came to that in time."""
        with self.changed:
            return self.changed.wait_for(lambda: not self.jobs and not self.busy, timeout)

    def finish(self) -> None:
        """Do what is pending on this thread (the process ends: the worker may be mid-job,
        and is a daemon that will not be waited for)."""
        while True:
            with self.changed:
                if not self.jobs:
                    return
                job = self.jobs.popleft()
            _do(job)


def _do(job: Job) -> None:
    try:
        job()
    except Exception:  # a job's own fault: the others still run
        log.exception("a job done behind the stages failed")


_WORKER = _Worker()


def later(job: Job) -> None:
    """Run ``job`` on the engine's thread for work off the stages' path, after those
    given before it."""
    _WORKER.later(job)


def idle(timeout: float | None = None) -> bool:
    """Wait until every job given so far is done (tests; ``timeout`` in seconds)."""
    return _WORKER.idle(timeout)


def _forget() -> None:
    """In a forked child: the pending jobs are its parent's, and the thread is gone."""
    global _WORKER  # a new one: the old lock may be held by a thread the fork left behind
    _WORKER = _Worker()


os.register_at_fork(after_in_child=_forget)
atexit.register(lambda: _WORKER.finish())
