"""Sandbox uids: one per running submission, never shared, even across engine processes,
and handed out in rotation, so a uid comes back only after every other one has been used."""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grader.engine.sandbox.procs import is_zombie, processes_of
from grader.errors import SandboxError

SANDBOX_UID_BASE = 3_000_000  # far above login users, systemd's dynamic users and subuid ranges
# The range handed out in turn (two uids per submission: harness and student). Kernel
# state keyed by uid (keyrings, which no namespace separates) could pass from one
# submission to a later one only after the whole range; the seccomp filter refuses
# keyrings where it runs.
SANDBOX_UIDS = 4096
CURSOR = "grader-sandbox-uid-cursor"  # the last uid handed out (an offset), in lock_folder()


class _UidPool:
    """Hands out sandbox uids; one is never shared by two running submissions.

    Two engine processes on one host (``grader grade`` and ``grader engine serve``) must
    not share one either, or one's sweep would kill the other's stage: each uid in use is
    held by an exclusive ``flock`` on a lock file, which the kernel drops if we die. The
    next uid is the first free one after the last handed out by any engine process (a
    cursor file, read and written under its own ``flock``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # uid -> lock file descriptor

    def take(self) -> int:
        with self._lock, _cursor() as cursor:
            last = cursor.read()
            for step in range(1, SANDBOX_UIDS + 1):
                offset = (last + step) % SANDBOX_UIDS
                uid = SANDBOX_UID_BASE + offset
                if uid in self._held:
                    continue
                fd = _try_lock(uid)
                if fd is None:
                    continue
                if processes_of(uid):  # left over from a crashed engine: not ours to use
                    os.close(fd)
                    continue
                self._held[uid] = fd
                cursor.write(offset)
                return uid
        raise SandboxError(f"all {SANDBOX_UIDS} sandbox uids are in use")

    def give_back(self, uid: int) -> None:
        with self._lock:
            fd = self._held.pop(uid, None)
        if fd is not None:
            os.close(fd)


class _Cursor:
    """The cursor file, locked: the offset of the uid handed out last."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self) -> int:
        os.lseek(self.fd, 0, os.SEEK_SET)
        text = os.read(self.fd, 32).decode(errors="replace").strip()
        return int(text) % SANDBOX_UIDS if text.isdigit() else SANDBOX_UIDS - 1

    def write(self, offset: int) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{offset}\n".encode(), 0)


@contextmanager
def _cursor() -> Iterator[_Cursor]:
    path = lock_folder() / CURSOR
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield _Cursor(fd)
    finally:
        os.close(fd)  # drops the flock


def leftover_processes() -> list[int]:
    """Live processes of sandbox uids that no running engine holds: a leak (none expected)."""
    owners: dict[int, list[int]] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            try:
                uid = entry.stat().st_uid if entry.name.isdigit() else -1
            except OSError:
                continue
            in_range = SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UIDS
            if in_range and not is_zombie(entry.name):
                owners.setdefault(uid, []).append(int(entry.name))
    leaked = []
    for uid, pids in sorted(owners.items()):
        fd = None if uid in _POOL._held else _try_lock(uid)
        if fd is not None:  # nobody holds the uid, yet it has processes
            os.close(fd)
            leaked += pids
    return leaked


def lock_folder() -> Path:
    """Where engine processes on this host meet: /run/lock, else the temporary folder."""
    run_lock = Path("/run/lock")
    return run_lock if os.access(run_lock, os.W_OK) else Path(tempfile.gettempdir())


def lock_path(uid: int) -> Path:
    """The lock file an engine process holds while ``uid`` runs one of its submissions."""
    return lock_folder() / f"grader-sandbox-uid-{uid}.lock"


def _try_lock(uid: int) -> int | None:
    fd = os.open(lock_path(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


_POOL = _UidPool()


@contextmanager
def sandbox_uid() -> Iterator[int | None]:
    """A uid of the stage's own while the block runs (``None`` when the engine is not root)."""
    if os.geteuid() != 0:
        yield None
        return
    uid = _POOL.take()
    try:
        yield uid
    finally:
        _POOL.give_back(uid)
