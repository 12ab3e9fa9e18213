"""The zygote: a small, single-threaded process that starts the unshare kind's sandboxes.

Forking costs in proportion to the memory a process maps, and a fork of a multi-threaded
Python process must re-initialise the interpreter in the child: for the engine (tens to
hundreds of MB, many threads) that was most of an unshare stage's cost, and it grew with
the engine. The engine instead starts this process once (``spawn.Zygote``), as root like
itself, and sends it each stage as one message on a ``SOCK_SEQPACKET`` socket: the
pickled request (the cell, argv, environment, seccomp program, cgroup files) with the
stage's descriptors attached (``SCM_RIGHTS``): a status pipe's write end, stdin, stdout,
stderr and the descriptors the stage keeps.

For each request the zygote prepares pid 1's work (``spawn.prepare``: the buffers, and
the mount plan it keeps per cell for the next stage) and forks a keeper, which puts the
stage's descriptors at their numbers, unshares the pid namespace for its children and
forks pid 1 (``spawn.run_pid1``: everything as before). Both forks are raw ``fork(2)``
calls (``spawn.fork``): with one thread, there is no lock to re-initialise and no
at-fork handler to run. The keeper writes pid 1's host pid to the status pipe, waits for
it and writes its wait status, then exits; the engine's watcher reads both
(``spawn.Sandboxed``). The keeper dies with the zygote, and pid 1 with the keeper
(``PR_SET_PDEATHSIG``); the zygote ends when the engine's end of the socket closes, so
an engine killed mid-stage leaves no sandbox running.

Nothing a student controls reaches this process: requests come only from the engine that
started it, over a socket pair no other process holds.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import select
import signal
import socket
from contextlib import suppress

from grader.engine.sandbox import netns, spawn
from grader.engine.sandbox.warm import preload

MAX_REQUEST = 1 << 20  # bytes: a cell, an argv and an environment
MAX_FDS = 64


def main(fd: int, warm: str | None = None) -> None:
    """Serve the engine on socket ``fd`` until it closes. ``warm``: this is a warm zygote
    (``warm.py``; the folder it imported ``grader`` from): it first imports what the
    harness's pytest run needs, then says it is ready (``spawn.READY``) or why not."""
    server = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when this ends
    zygote = os.getpid()
    if warm is not None:
        try:
            preload(warm)
            word = spawn.READY
        except Exception as exc:  # noqa: BLE001 (told to the engine, which starts cold)
            word = f"{type(exc).__name__}: {exc}".encode()[: MAX_REQUEST // 2]
        try:
            server.send(word)
        except OSError:
            return  # the engine ended before this was ready
        if word != spawn.READY:
            return
    ahead = _network_ahead()
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(server, MAX_REQUEST, MAX_FDS)
        except InterruptedError:
            continue
        except OSError:
            break
        if not message:
            break  # the engine ended
        try:
            request: spawn.Request = pickle.loads(message)  # noqa: S301 (the engine's own)
            # made here, not in the keeper: what it works out once per cell (the mount
            # plan) is kept for the next stage
            launch = spawn.prepare(
                request.cell,
                request.argv,
                request.timeout,
                env=request.env,
                seccomp=request.seccomp,
                pass_fds=request.pass_fds,
                warm=request.warm,
            )
            launch.writes = spawn.join_writes(request.joins)
        except Exception as exc:  # noqa: BLE001 (reported to the engine, which raises)
            _refuse(fds, exc)
            continue
        network = None  # the one made ahead, which pid 1 then does not make
        if launch.flags & spawn.CLONE_NEWNET and ahead is not None:
            network, ahead = ahead, None
            launch.flags &= ~spawn.CLONE_NEWNET
        try:
            if spawn.fork() == 0:  # a raw fork: this process has one thread
                server.close()
                _keep(request, launch, fds, zygote, network)
        finally:
            for received in fds if network is None else [*fds, network]:
                os.close(received)
        if ahead is None and not select.select([server], [], [], 0)[0]:
            ahead = _network_ahead()  # while the stage starts, unless another waits


def _network_ahead() -> int | None:
    """The next stage's network namespace, made while this process has nothing else to do
    (``netns.fresh``: the kernel's set-up of one is about half a millisecond that pid 1
    would spend while the stage waits), loopback up as pid 1 brings up its own. ``None``
    if one cannot be made (pid 1 makes its own)."""
    try:
        return netns.fresh()
    except OSError:
        return None


def _refuse(fds: list[int], exc: Exception) -> None:
    """Tell the engine that a stage cannot start, on its stderr and its status pipe."""
    with suppress(OSError):
        os.write(fds[3], f"sandbox: cannot start the stage: {exc}\n".encode())
    with suppress(OSError):
        os.write(fds[0], spawn.WORD.pack(-1))
    for received in fds:
        os.close(received)


def _keep(
    request: spawn.Request,
    launch: spawn.Launch,
    fds: list[int],
    zygote: int,
    network: int | None = None,
) -> None:
    """The keeper: start pid 1 of the stage's sandbox (in ``network``, a namespace made
    ahead, when there is one), report its pid, then its end."""
    report = fds[0]
    try:
        if network is not None:
            netns.enter(network)
            os.close(network)
        spawn.parent_death_signal()
        if os.getppid() != zygote:
            os._exit(1)  # the zygote ended before this could note it
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        top = max((2, *request.pass_fds)) + 1  # the stage's numbers lie below
        report = _above(report, top)
        moved = [_above(fd, top) for fd in fds[1:]]
        for fd, target in zip(moved, [0, 1, 2, *request.pass_fds], strict=True):
            os.dup2(fd, target)  # inheritable: the stage keeps it
            os.close(fd)
        spawn.new_pid_namespace()
        first = spawn.fork()
        if first == 0:
            spawn.run_pid1(launch)  # never returns
        for target in (0, 1, 2, *request.pass_fds):
            os.close(target)  # the stage's pipes end with the stage
        os.write(report, spawn.WORD.pack(first))
        _, ended = os.waitpid(first, 0)
        os.write(report, spawn.WORD.pack(ended))
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 (a forked keeper never unwinds)
        try:
            os.write(2, f"sandbox: cannot start the stage: {exc}\n".encode())
            os.write(report, spawn.WORD.pack(-1))
        finally:
            os._exit(1)


def _above(fd: int, floor: int) -> int:
    """A copy of ``fd`` numbered ``floor`` or higher (close-on-exec); ``fd`` is closed."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return copy
