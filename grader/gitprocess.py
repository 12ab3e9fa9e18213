"""One git command, run to its end in a worker thread, stoppable from the event loop.

``asyncio.create_subprocess_exec`` costs the grader about twice the CPU of a plain
``subprocess.Popen`` and three times the wall time on Python 3.11 (a new thread per
child to wait for it, pipes wired through the loop), and a grading run starts several
git commands per student. Here the command runs with ``Popen.communicate`` in a thread
of git's own pool (not the loop's default executor, where a slow network fetch would
hold up the DNS look-ups of the engine's HTTP client); the coroutine awaiting it can
still be cancelled: ``stop`` kills the command's process group (or keeps it from
starting), so the thread ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

GIT_THREADS = 16  # more than the pipeline runs at once (4 fetches and 4 reads)
_THREADS = ThreadPoolExecutor(max_workers=GIT_THREADS, thread_name_prefix="grader-git")


@dataclass(frozen=True)
class Finished:
    """How a command ended: its exit status and what it wrote."""

    returncode: int
    stdout: bytes
    stderr: bytes


class GitTimeoutError(Exception):
    """The command ran past its time and was killed (with whatever it had started)."""


class GitProcess:
    """``argv`` run once, in a session of its own (a kill also stops ssh and other helpers)."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], stdin: bytes | None, seconds: float
    ):
        self.argv = list(argv)
        self.env = dict(env)
        self.stdin = stdin
        self.seconds = seconds
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = False

    async def run(self) -> Finished:
        """Run to the end; raises ``GitTimeoutError``, or ``CancelledError`` after stopping it."""
        try:
            return await asyncio.get_running_loop().run_in_executor(_THREADS, self._run)
        except asyncio.CancelledError:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the command's process group now, or keep the command from starting."""
        with self._lock:
            self._stopped = True
            if self._process is not None and self._process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)

    def _run(self) -> Finished:
        with self._lock:
            if self._stopped:
                return Finished(-signal.SIGKILL, b"", b"")
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if self.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=True,
            )
            self._process = process
        try:
            out, err = process.communicate(self.stdin, timeout=self.seconds)
        except subprocess.TimeoutExpired:
            self.stop()
            process.communicate()
            raise GitTimeoutError from None
        finally:
            if process.returncode is None:  # interrupted while reading: stopped, then reaped
                self.stop()
                process.wait()
        return Finished(process.returncode, out, err)
