"""One grading run per course at a time (cron and a human must not collide)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grader.errors import ConfigError, CourseLockedError

LOCK_FILE = "lock"


@contextmanager
def course_lock(state_dir: Path) -> Iterator[None]:
    """Hold ``state_dir/lock``; a second holder gets CourseLockedError naming the first."""
    path = state_dir / LOCK_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot hold the grader's state here: {exc.strerror or exc} (it must be a folder; "
            "deleting it only costs time)",
            file=str(state_dir),
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(errors="replace").strip() or "another process"
            raise CourseLockedError(
                f"another grader run is using this course ({holder}); wait for it to finish",
                file=str(path),
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock; a SIGKILLed holder releases it too
