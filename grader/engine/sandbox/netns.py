"""Fresh network namespaces made ahead of the bubblewrap stages that get no network.

A stage without network gets a network namespace of its own: only a loopback, nothing
of the host's, nothing another stage can reach. bubblewrap's ``--unshare-net`` makes
one while the stage waits (the kernel sets up every protocol's per-namespace state, then
bubblewrap brings the loopback up over netlink: about 0.6 ms of a stage's ~8). Instead,
the engine's thread for work off the stages' path (``behind``) makes them ahead
(``take``, ``refill``): it moves itself into a new one
(``unshare(CLONE_NEWNET)`` changes the calling thread only), brings its loopback up,
keeps a descriptor of it and moves back. A stage is started by a thread that enters the
namespace it took for just the ``vfork`` and ``exec`` of bubblewrap (``entered``), which
then runs without ``--unshare-net``. Each namespace serves one stage: the engine closes
its descriptor once bubblewrap runs, and the namespace ends with the stage's processes.

The unshare sandbox's zygote, one thread, makes its next stage's the same way (``fresh``)
between two stages (``zygote.py``); its pid 1 makes one when none was ready, loopback up
too, so a stage sees the same either way.

Where a namespace cannot be made (not root, no ``/proc/thread-self``, a kernel that
refuses), ``take`` answers ``None`` and bubblewrap makes its own as before.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from grader.engine.sandbox import behind
from grader.errors import SandboxError

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
AHEAD = 2  # namespaces kept ready: a slot's next stage seldom waits for one
_OWN = "/proc/thread-self/ns/net"
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"setns: {os.strerror(number)}")


def loopback_up() -> None:
    """Bring up this thread's namespace's ``lo`` (the kernel gives it 127.0.0.1 and ::1),
    as bubblewrap does in the namespace it makes (and the unshare cell's pid 1 in its
    own, when none was made ahead)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        name = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, name + bytes(22))[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + bytes(22))


def fresh() -> int:
    """A descriptor of a new network namespace with its loopback up, made on this thread,
    which is back in its own namespace when this returns (or raises ``OSError``)."""
    home = os.open(_OWN, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"unshare: {os.strerror(number)}")
        fd = -1
        try:
            fd = os.open(_OWN, os.O_RDONLY | os.O_CLOEXEC)
            loopback_up()
        except OSError:
            if fd >= 0:
                os.close(fd)
            raise
        finally:
            _setns(home)
        return fd
    finally:
        os.close(home)


class _Pool:
    """Up to ``AHEAD`` namespaces made ahead, off the stages' path (``behind``), made
    again when told (``refill``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: list[int] = []
        self.making = 0  # asked of ``behind``, not made yet
        self.broken = False

    def take(self) -> int | None:
        with self.lock:
            return self.ready.pop() if self.ready and not self.broken else None

    def refill(self) -> None:
        with self.lock:
            wanted = 0 if self.broken else AHEAD - len(self.ready) - self.making
            self.making += max(wanted, 0)
        for _ in range(wanted):
            behind.later(self._make)

    def _make(self) -> None:
        try:
            fd = fresh()
        except OSError as exc:
            log.info("no network namespaces made ahead (bubblewrap makes them): %s", exc)
            with self.lock:
                self.making -= 1
                self.broken = True
            return
        with self.lock:
            self.making -= 1
            self.ready.append(fd)


_POOL = _Pool()


def _forget() -> None:
    """In a forked child: the namespaces made ahead are its parent's (closed here, so no
    two processes hand out the same one), and the thread that made them is gone."""
    global _POOL  # a new one: the old lock may be held by a thread the fork left behind
    for fd in _POOL.ready:
        with suppress(OSError):
            os.close(fd)
    _POOL = _Pool()


os.register_at_fork(after_in_child=_forget)


def take() -> int | None:
    """A descriptor of a fresh network namespace for one stage, the caller's to close;
    ``None`` when none is ready (or none can be made): bubblewrap makes its own."""
    if os.geteuid() != 0:
        return None
    return _POOL.take()


def refill() -> None:
    """Make the namespaces taken again, from now on: called once a stage has started and
    its starting thread only waits (made at ``take``, they competed for the CPU with the
    bubblewrap they were for: on two cores the stage saw no gain)."""
    if os.geteuid() == 0:
        _POOL.refill()


def enter(fd: int) -> None:
    """Move this thread into namespace ``fd`` for good (a process about to start a stage:
    the unshare sandbox's keeper). Raises ``OSError``."""
    _setns(fd)


@contextmanager
def entered(fd: int) -> Iterator[None]:
    """This thread in namespace ``fd`` for the block (a process started meanwhile is
    born in it), back in its own after, whatever the block raised."""
    home = os.open(_OWN, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
        try:
            yield
        finally:
            try:
                _setns(home)
            except OSError as exc:  # never seen: root may always go back where it was
                raise SandboxError(f"cannot leave a stage's network namespace: {exc}") from exc
    finally:
        os.close(home)
