"""Folders the engine no longer needs, removed in the background and retried until gone.

What a submission leaves (its work and upload folders), an interrupted upload or a
folder without a row is first *moved* into ``data_dir/trash/``: one rename, instant
whatever the folder holds. One background thread then removes what the trash holds
(``trees.remove_tree``: any depth, name, mode or count). A removal that fails is logged
and tried again later, waiting longer each time (``retry_delay``). Nothing waits for a
removal: not a submission's result, not the engine's start, not its stop (a removal
under way ends between two entries; the trash is emptied after the next start).

A folder that cannot be moved (a rename refused) stays where it is, with a warning: it
is never removed in place, where its path could be in use again. The next start finds
it among the store's leftovers and tries again.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader.engine import trees

log = logging.getLogger("grader.engine")

FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 600.0
IDLE_SECONDS = 60.0  # the trash is looked at this often even when nobody wakes it
STOP_SECONDS = 5.0  # how long a stop waits for the thread to end its current entry

Remove = Callable[..., bool]  # trees.remove_tree(path, stop=...)
Clock = Callable[[], float]


def retry_delay(failures: int) -> float:
    """Seconds before another try after ``failures`` failed ones: doubling, capped."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** max(0, failures - 1))


@dataclass
class _Failure:
    count: int
    next_try: float


class Trash:
    """``data_dir/trash`` and the thread that empties it."""

    def __init__(
        self,
        folder: Path,
        *,
        remove: Remove = trees.remove_tree,
        clock: Clock = time.monotonic,
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._remove, self._clock = remove, clock
        self._failures: dict[Path, _Failure] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def discard(self, path: Path) -> bool:
        """Move ``path`` (anything, or nothing) into the trash; it is removed soon after.

        Returns whether ``path`` is gone from its place; never raises.
        """
        try:
            path.rename(self.folder / f"{_label(path)}.{secrets.token_hex(6)}")
        except FileNotFoundError:
            return True
        except OSError as exc:
            log.warning("cannot move %s into the trash (next start tries again): %s", path, exc)
            return False
        self._wake.set()
        return True

    def start(self) -> None:
        """Empty the trash in a background thread from now on."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="engine-trash", daemon=True)
            self._thread.start()

    def stop(self, wait_seconds: float = STOP_SECONDS) -> None:
        """End the thread; a removal under way stops between two entries."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait_seconds)
            if self._thread.is_alive():
                log.warning("the trash thread did not stop within %.0f s", wait_seconds)

    @property
    def pending(self) -> list[Path]:
        """What is waiting to be removed."""
        try:
            return sorted(self.folder.iterdir())
        except OSError:
            return []

    def empty(self) -> float | None:
        """Try once to remove everything due; the seconds until the next retry, if any."""
        now = self._clock()
        for path in self.pending:
            if self._stopping.is_set():
                return None
            failure = self._failures.get(path)
            if failure is not None and failure.next_try > now:
                continue
            self._try(path, failure)
        waits = [f.next_try - self._clock() for f in self._failures.values()]
        return max(0.0, min(waits)) if waits else None

    def _try(self, path: Path, failure: _Failure | None) -> None:
        try:
            done = self._remove(path, stop=self._stopping)
        except OSError as exc:
            count = failure.count + 1 if failure else 1
            delay = retry_delay(count)
            self._failures[path] = _Failure(count, self._clock() + delay)
            log.warning(
                "cannot remove %s (attempt %d; next in %.0f s): %s", path, count, delay, exc
            )
            return
        if done:
            self._failures.pop(path, None)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a discard from now on wakes the wait below
            try:
                wait = self.empty()
            except Exception:  # the thread must outlive a bug here: log it, try again later
                log.exception("emptying the engine's trash failed")
                wait = FIRST_RETRY_SECONDS
            self._wake.wait(IDLE_SECONDS if wait is None else min(wait, IDLE_SECONDS))


def _label(path: Path) -> str:
    """A readable trash name: the path's last parts (``17-work``), never a separator."""
    return "-".join(path.parts[-2:])[:80]
