"""Run one confined stage: pump its output, enforce time, memory, disk and cancel."""

from __future__ import annotations

import json
import logging
import os
import resource
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import IO, Any, Literal

from grader.engine import trees
from grader.engine.sandbox import netns, spawn, warm
from grader.engine.sandbox.cgroups import Group, refill_ahead, stage_group, threads_may_enter
from grader.engine.sandbox.layout import (
    MB,
    PRIVATE_TMPFS,
    TMP,
    WORK_FILES,
    Cell,
    command_argv,
    engine_sets_rlimits,
    stage_argv,
    stage_rlimits,
)
from grader.engine.sandbox.procs import code_layout, memory_kb, stage_processes, sweep
from grader.engine.sandbox.spawn import Sandboxed, zygote_layout
from grader.engine.sandbox.syscalls import bpf_program
from grader.engine.sandbox.tmpfs import capped
from grader.engine.spec import Cancel
from grader.errors import SandboxError, WarmZygoteError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # memory, time and cancel checks
DISK_POLL_SECONDS = POLL_SECONDS  # at least; a slow walk (many files) spaces them out
MAX_FILES = WORK_FILES  # entries in the writable folders; more is a disk-limit kill


@dataclass(frozen=True)
class StageExit:
    """How a confined stage ended. ``over``: the limit it was killed for, if any;
    ``disk``: bytes and entries in use at the last disk check (the kill's evidence)."""

    exit_code: int | None
    signal: int | None
    seconds: float
    peak_kb: int
    timed_out: bool = False
    over: Literal["memory", "disk"] | None = None
    cancelled: bool = False
    disk: tuple[int, int] = (0, 0)


def run_stage(
    cell: Cell,
    command: str,
    *,
    timeout: float,
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    cancel: Cancel | None = None,
    hold: Callable[[], None] | None = None,
) -> StageExit:
    """Run ``command`` confined in ``cell``; returns when it and all it started are gone.

    Output goes to ``stdout``/``stderr``, each capped at ``limits.output_bytes`` with a
    marker line. ``hold`` is called once the sandbox is ready, right before the command
    runs (the submission's turn on a slot, ``spec.Turn``): whatever it raises ends the
    stage unstarted. Raises ``SandboxError`` only for faults of the engine, never the
    stage's.
    """
    cwd = str(cell.workspace) if cell.kind == "rlimits" else None
    cap = cell.limits.output_bytes
    with (
        capped(cell) as cell,
        ExitStack() as cgroups,  # the stage's, made by start (removed when it ends)
        _Capped(stdout, cap) as out,
        _Capped(stderr, cap) as err,
    ):
        made: list[Group | None] = []

        def make_group() -> Group | None:
            made.append(cgroups.enter_context(stage_group(cell.kind, cell.limits)))
            return made[-1]

        try:
            process = start(
                cell,
                command,
                timeout,
                make_group=make_group,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                hold=hold,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox: {exc}") from exc
        group = made[0]
        watch = _Watch(cell, process, timeout, cancel, group=group)
        try:
            return watch.run(out, err)
        finally:
            watch.kill()
            _close(process)
            if group is not None:  # every process of the stage is in it, and cannot leave
                if not group.kill():
                    raise SandboxError("processes of the stage's cgroup survive SIGKILL")
            elif cell.uid is not None and not sweep(cell.uid):
                raise SandboxError(f"processes of sandbox uid {cell.uid} survive SIGKILL")


class _Capped:
    """A stream file that keeps the first ``cap`` bytes and then one marker line."""

    def __init__(self, path: Path, cap: int) -> None:
        self.path, self.cap, self.kept, self.cut = path, cap, 0, False
        self.file: IO[bytes] | None = None

    def __enter__(self) -> _Capped:
        self.file = self.path.open("wb")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()

    def write(self, data: bytes) -> None:
        assert self.file is not None
        room = self.cap - self.kept
        if room > 0:
            self.file.write(data[:room])
            self.kept += min(room, len(data))
        if len(data) > room and not self.cut:
            self.cut = True
            self.file.write(f"\n[output truncated: more than {self.cap} bytes]\n".encode())


Process = Popen[bytes] | Sandboxed  # a stage's first process: bubblewrap, or unshare's pid 1
_Sinks = dict[int, "_Capped"]  # pipe fd -> its stream file
_Ending = Literal["exited", "timeout", "cancel", "memory", "disk"]


def start(
    cell: Cell,
    command: str | Sequence[str],
    timeout: float,
    *,
    group: Group | None = None,
    make_group: Callable[[], Group | None] | None = None,
    pass_fds: tuple[int, ...] = (),
    hold: Callable[[], None] | None = None,
    **options: Any,
) -> Process:
    """Start ``command`` confined in ``cell``, in a session of its own (in ``group``'s
    cgroups, joined before the stage runs: bubblewrap is born in them, started by this
    thread from inside, ``Group.entered``, or on cgroup v2 the engine moves its sandboxed
    process in while it waits, ``_hold_and_release``; the unshare cell's pid 1 moves
    itself, ``Group.join_files``). ``make_group`` (instead of ``group``) makes them,
    called once: on v2 while bubblewrap starts up, which hides the time their making
    takes.

    The unshare cell is built by a forked child of the engine's zygote (``spawn``), which loads
    the seccomp filter last, right before the stage's exec. bubblewrap's options (host
    paths: the mounts' sources) go through a file descriptor (``--args``), so the
    sandbox's pid 1, bubblewrap itself, shows none of them in /proc/1/cmdline; the
    seccomp filter (``syscalls``) through another (``--seccomp``). bubblewrap closes both
    before the command runs.

    ``hold`` (``run_stage``'s) is called before the command may run: under bubblewrap while
    its sandboxed process waits, so the sandbox is built before a slot is free; otherwise
    before anything starts.
    """
    run = _warm_run(cell, command, options.get("env") or {})
    if run is not None:
        if make_group is not None:
            group, make_group = make_group(), None
        if hold is not None:
            hold()
            hold = None
        try:
            sandboxed = spawn.start(
                cell, command_argv(command), timeout, env=options["env"], seccomp=bpf_program(),
                pass_fds=pass_fds, joins=group.join_files() if group is not None else [],
                warm=run[1], python=run[0],
                **{key: value for key, value in options.items() if key != "env"},
            )  # fmt: skip
            refill_ahead()
            return sandboxed
        except WarmZygoteError as exc:
            _start_cold(run[0], exc)
    argv = stage_argv(cell, command, timeout)
    if make_group is not None and not _is_bwrap_argv(argv):
        group, make_group = make_group(), None
    if hold is not None and not _is_bwrap_argv(argv):
        hold()
        hold = None
    if cell.kind == "unshare":
        env = options.pop("env")
        joins = group.join_files() if group is not None else []
        sandboxed = spawn.start(
            cell, argv, timeout, env=env, seccomp=bpf_program(),
            pass_fds=pass_fds, joins=joins, **options,
        )  # fmt: skip
        refill_ahead()
        return sandboxed
    if not _is_bwrap_argv(argv):
        join = group.join_prefix() if group is not None else []
        return subprocess.Popen(
            [*join, *argv], pass_fds=pass_fds, start_new_session=True, **options
        )
    if make_group is not None and threads_may_enter():
        group, make_group = make_group(), None  # bubblewrap is born in it (entered)
    inside = group is not None and group.threads_may_enter()
    end = argv.index("--")
    options_fd = _memfd("bwrap-options")
    info_read, info_write = os.pipe2(os.O_CLOEXEC)
    block_read, block_write = os.pipe2(os.O_CLOEXEC)
    fds = [options_fd, info_write, block_read]
    network: int | None = None  # a network namespace made ahead, the stage's (netns.py)
    try:
        program = bpf_program()
        seccomp = []
        if program is not None:
            fds.append(_memfd("bwrap-seccomp", program))
            seccomp = ["--seccomp", str(fds[-1])]
        wait = ["--info-fd", str(info_write), "--block-fd", str(block_read)]
        bwrap = argv[1:end]
        network = netns.take() if "--unshare-net" in bwrap else None
        if network is not None:  # bubblewrap is born in it instead of making one
            bwrap = [arg for arg in bwrap if arg != "--unshare-net"]
        _fill(options_fd, b"".join(arg.encode() + b"\0" for arg in [*seccomp, *wait, *bwrap]))
        short = [argv[0], "--args", str(options_fd), *argv[end:]]
        with (
            netns.entered(network) if network is not None else nullcontext(),
            group.entered() if group is not None and inside else nullcontext(),
        ):
            process = subprocess.Popen(
                short, pass_fds=(*pass_fds, *fds), start_new_session=True, **options
            )
    except BaseException:
        os.close(info_read)
        os.close(block_write)
        raise
    finally:
        for fd in fds if network is None else [*fds, network]:
            os.close(fd)
    try:
        if make_group is not None:  # bubblewrap starts up meanwhile
            try:
                group = make_group()
            except BaseException:
                os.close(info_read)
                os.close(block_write)
                raise
        _hold_and_release(
            process, info_read, block_write, cell, timeout, group, hold, born_inside=inside
        )
        if "--unshare-net" in argv[1:end]:
            netns.refill()  # for the next stages, while this one runs
        refill_ahead()
    except BaseException:
        _close(process)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return process


SETUP_SECONDS = 60.0  # for bubblewrap to make its sandboxed process, however loaded the host


def _hold_and_release(
    process: Process,
    info: int,
    block: int,
    cell: Cell,
    timeout: float,
    group: Group | None,
    hold: Callable[[], None] | None = None,
    *,
    born_inside: bool = False,
) -> None:
    """bubblewrap's sandboxed process waits (``--block-fd``) before it runs the stage:
    move it into ``group`` (unless bubblewrap was started in it: ``born_inside``) and set
    its rlimits (``layout.engine_sets_rlimits``), wait for ``hold`` to return, then let it
    go. No program runs for either: both are system calls of the engine's.

    bubblewrap reports the process (``--info-fd``) right after making it, so the engine's
    calls overlap bubblewrap's set-up. A bubblewrap that ends first (a bad option) reports
    nothing: the watcher reports how it ended. Raises ``SandboxError``.
    """
    pid = None
    try:
        pid = _child_pid(info)
        if pid is not None:
            if engine_sets_rlimits(cell):
                with suppress(ProcessLookupError):  # it ended: the watcher reports how
                    for kind, value in stage_rlimits(cell.limits, timeout):
                        resource.prlimit(pid, kind, (value, value))
            if group is not None:
                group.join(pid, born_inside=born_inside)
    except OSError as exc:
        os.close(block)
        raise SandboxError(f"cannot confine the stage's process: {exc}") from exc
    except BaseException:
        os.close(block)
        raise
    finally:
        os.close(info)
    try:
        if hold is not None:
            hold()
    except BaseException:
        # killed while it waits (an end of file would let it run the command), then let go
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.close(block)
        raise
    try:
        os.write(block, b"x")
    except BrokenPipeError:
        pass  # bubblewrap ended already
    finally:
        os.close(block)


_COLD: set[str] = set()  # interpreters whose warm zygote could not start


def _start_cold(python: str, exc: WarmZygoteError) -> None:
    """From now on, harness stages on ``python`` start it themselves."""
    _COLD.add(python)
    log.warning("%s; harness stages start their interpreter", exc)


def _warm_run(
    cell: Cell, command: str | Sequence[str], env: dict[str, str]
) -> tuple[str, tuple[tuple[str, ...], tuple[str, ...]]] | None:
    """The interpreter and the reading of a harness stage that starts warm (``warm.py``):
    a harness cell, the engine as root, confined by namespaces, the command exactly the
    harness's pytest run on the engine's own interpreter. ``None``: it starts cold."""
    if not warm.ENABLED or not isinstance(command, str) or cell.role != "harness":
        return None
    reading = warm.harness_run(command)
    if reading is None:
        return None
    python = warm.interpreter(cell, env, command.split()[0])
    if python is None or python in _COLD:
        return None
    return python, reading


def prewarm(kind: str, commands: Iterable[str]) -> None:
    """Start the engine's warm zygote ahead of its first stage (``warm.py``; it takes a
    few hundred milliseconds to import pytest), when one of ``commands`` would use it on
    a sandbox of ``kind``. Blocks: for a thread of its own."""
    if not warm.ENABLED or kind == "rlimits" or os.geteuid() != 0:
        return
    if not any(warm.harness_run(command) for command in commands):
        return
    python = warm.default_interpreter()
    if python is None or python in _COLD:
        return
    try:
        spawn.Zygote.get(python)
    except WarmZygoteError as exc:
        _start_cold(python, exc)
    except SandboxError as exc:  # tried again, and reported, at the first stage
        log.debug("the warm zygote did not start ahead: %s", exc)


def _is_bwrap_argv(argv: Sequence[str]) -> bool:
    """Whether ``argv`` (``layout.stage_argv``'s) starts bubblewrap, which can hold a stage."""
    return Path(argv[0]).name == "bwrap" and "--" in argv


def _child_pid(info: int) -> int | None:
    """The host pid of bubblewrap's sandboxed process, from its ``--info-fd`` report (read
    to its end: bubblewrap closes it once written); ``None`` if it ended without one."""
    report = b""
    deadline = time.monotonic() + SETUP_SECONDS
    waiting = select.poll()
    waiting.register(info, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SandboxError(f"bubblewrap did not start within {SETUP_SECONDS:.0f} s")
        if not waiting.poll(left * 1000):
            continue
        data = os.read(info, 4096)
        if not data:
            break
        report += data
    if not report:
        return None
    try:
        pid = json.loads(report)["child-pid"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"bubblewrap's report is not understood: {report[:200]!r}") from exc
    if not isinstance(pid, int) or pid <= 0:
        raise SandboxError(f"bubblewrap's report names no process: {report[:200]!r}")
    return pid


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, 0)
    if data:
        _fill(fd, data)
    return fd


def _fill(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` and rewind it for the reader."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)


def watch_process(
    cell: Cell,
    process: Process,
    *,
    timeout: float,
    cancel: Cancel,
    group: Group | None = None,
) -> StageExit:
    """Enforce time, memory and ``cancel`` on a student process the broker started (its
    stdio belongs to the harness); returns when it and all it started are gone.

    Its memory is what it and its descendants hold (the student uid may run several such
    processes at once); it is never swept by uid, which would end its siblings too. Its pid
    namespace (or process group, without namespaces) takes what it started with it.
    """
    watch = _Watch(cell, process, timeout, cancel, alone=False, group=group)
    try:
        return watch.run(None, None)
    finally:
        watch.kill()


class _Watch:
    """Pumps output and enforces time, memory, disk and cancel until the stage ends.

    ``alone``: the stage is the only thing running under its uid (a stage, not one of the
    broker's student processes): its processes are found and swept by uid, and its disk
    is measured. ``group``: its cgroups (``None``: none here), whose OOM kills are
    memory-limit kills and whose processes are killed at the end.
    """

    def __init__(
        self,
        cell: Cell,
        process: Process,
        timeout: float,
        cancel: Cancel | None,
        *,
        alone: bool = True,
        group: Group | None = None,
    ) -> None:
        self.cell, self.process, self.timeout, self.cancel = cell, process, timeout, cancel
        self.alone, self.group = alone, group
        self.started = time.monotonic()
        self.peak_kb = 0
        self.status: int | None = None  # the wait status, once reaped
        self.disk_every = DISK_POLL_SECONDS
        self.next_disk = self.started + self.disk_every
        self.pids: list[int] = []
        self.disk: tuple[int, int] = (0, 0)

    def run(self, out: _Capped | None, err: _Capped | None) -> StageExit:
        sinks: _Sinks = {}
        if out is not None and err is not None:
            assert self.process.stdout is not None and self.process.stderr is not None
            sinks = {self.process.stdout.fileno(): out, self.process.stderr.fileno(): err}
        with selectors.DefaultSelector() as selector:
            for fd in sinks:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            # A pidfd (the zygote keeper's status pipe for an unshare sandbox) turns
            # readable when the stage's first process ends: no polling delay (without one,
            # Linux < 5.3, the end is noticed within POLL_SECONDS).
            ended_fd: int | None = None
            if isinstance(self.process, Sandboxed):
                selector.register(self.process.ended(), selectors.EVENT_READ)
            else:
                with suppress(OSError):
                    ended_fd = os.pidfd_open(self.process.pid)
            if ended_fd is not None:
                selector.register(ended_fd, selectors.EVENT_READ)
            try:
                ended = self._supervise(selector, sinks)
            finally:
                if isinstance(self.process, Sandboxed):
                    selector.unregister(self.process.ended())
                if ended_fd is not None:
                    selector.unregister(ended_fd)
                    os.close(ended_fd)
            self.kill()
            until = time.monotonic() + 1.0  # what the dead stage left in its pipes
            while sinks and time.monotonic() < until:
                self._pump(selector, sinks, 0.05)
        seconds = time.monotonic() - self.started
        assert self.status is not None  # kill() waited
        peak = self.peak_kb
        if self.group is not None:
            if ended == "exited" and not self.group.joined():
                raise SandboxError("the stage could not join its cgroup")
            if ended in ("exited", "timeout") and self.group.oom_killed():
                ended = "memory"  # the kernel killed a process of it at the cgroup's limit
        if ended == "exited":
            code, sig = _decode(self.status)
            return StageExit(code, sig, seconds, peak)
        if ended == "timeout":
            return StageExit(None, None, seconds, peak, timed_out=True)
        if ended == "cancel":
            return StageExit(None, None, seconds, peak, cancelled=True)
        return StageExit(None, signal.SIGKILL, seconds, peak, over=ended, disk=self.disk)

    def _supervise(self, selector: selectors.BaseSelector, sinks: _Sinks) -> _Ending:
        deadline = self.started + self.timeout
        next_check = self.started + POLL_SECONDS  # nothing to measure in its first instant
        while True:
            status = _reap(self.process, block=False)
            if status is not None:
                # Not wait4's ru_maxrss: a child forked from this process counts our own
                # memory until it execs. The watcher's samples measure the stage alone.
                self.status = status
                return "exited"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if self.cancel is not None and self.cancel.is_set():
                return "cancel"
            if now >= next_check:  # /proc is read every POLL_SECONDS, not per output chunk
                over = self._check_limits(now)
                if over is not None:
                    return over
                next_check = now + POLL_SECONDS
            self._pump(selector, sinks, min(next_check, deadline) - now)

    def _check_limits(self, now: float) -> Literal["memory", "disk"] | None:
        if self.group is not None and self.group.oom_killed():
            return "memory"
        # the stage's cgroup lists its processes; else /proc is read (by uid, or descent)
        self.pids = (
            self.group.pids()
            if self.group is not None
            else stage_processes(self.cell.uid if self.alone else None, self.process.pid)
        )
        # the unshare cell's pid 1 is a fork of this engine: its memory is ours, not the stage's
        ours = self.process.pid if isinstance(self.process, Sandboxed) else None
        # so is a stage process forked from it that has not exec'd yet (same code and stack
        # addresses as this engine, which no exec'd program has under ASLR)
        samples = [
            memory_kb(pid)
            for pid in self.pids
            if pid != ours and not (ours is not None and _is_engine_fork(pid))
        ]
        # anonymous memory: the cgroup's count, where each page is charged once (a sum over
        # processes counts a fork's copy-on-write pages once per process); shared memory
        # the processes map, from /proc
        anon = self.group.anon_kb() if self.group is not None else None
        if anon is None:
            anon = sum(sample.anon for sample in samples)
        used = anon + sum(sample.shmem for sample in samples)
        self.peak_kb = max(self.peak_kb, used, *(sample.peak for sample in samples))
        if used > self.cell.limits.memory_mb * 1024:
            return "memory"
        if self.alone and now >= self.next_disk:
            began = time.monotonic()
            # a private /tmp: read through a process already inside the sandbox (not
            # bubblewrap's outer process or unshare's set-up, whose /tmp is the host's)
            tmp_of = _inside(self.pids)[:1] if self.cell.kind != "rlimits" else []
            used_bytes, files, full = disk_usage(self.cell, tmp_of)
            took = time.monotonic() - began
            self.disk_every = max(DISK_POLL_SECONDS, 20 * took)
            self.next_disk = now + self.disk_every
            self.disk = (used_bytes, files)
            if full or used_bytes > self.cell.limits.disk_mb * MB or files > MAX_FILES:
                return "disk"
        return None

    def _pump(self, selector: selectors.BaseSelector, sinks: _Sinks, wait: float) -> None:
        """Move what is readable into the stream files; a closed pipe leaves ``sinks``."""
        for key, _ in selector.select(timeout=max(wait, 0)):
            if key.fd not in sinks:
                continue  # the pidfd: the stage ended
            data = os.read(key.fd, 65536)
            if data:
                sinks[key.fd].write(data)
            else:
                selector.unregister(key.fd)
                del sinks[key.fd]

    def kill(self) -> None:
        """SIGKILL the stage: its sandbox (the pid namespace goes with it) or process group,
        then whatever still runs under its uid (a daemon that left the group)."""
        if self.status is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.status = _reap(self.process, block=True)
        if self.group is not None:
            self.group.kill(seconds=0)
        elif self.cell.uid is not None and self.alone:
            sweep(self.cell.uid, seconds=0)


def _reap(process: Process, *, block: bool) -> int | None:
    """The wait status of the stage's first process once it ended (``None``: it runs; with
    ``block``, never ``None``); sets the process's ``returncode``."""
    if isinstance(process, Sandboxed):
        return process.status(block=block)
    pid, status = os.waitpid(process.pid, 0 if block else os.WNOHANG)
    if pid != process.pid:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)  # Popen: reaped
    return status


def _inside(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` whose /tmp is not the engine's: already in the sandbox's root."""
    try:
        host = Path(TMP).stat().st_dev
    except OSError:
        return list(pids)
    found = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/root{TMP}").stat().st_dev != host:
                found.append(pid)
        except OSError:
            continue
    return found


def _decode(status: int) -> tuple[int | None, int | None]:
    """Exit code and signal; a shell reports a child's death by signal N as exit 128+N."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    code = os.waitstatus_to_exitcode(status)
    if 128 < code < 128 + 32:
        return None, code - 128
    return code, None


def _close(process: Process) -> None:
    if isinstance(process, Sandboxed):
        process.close()
        return
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def disk_usage(cell: Cell, pids: Sequence[int]) -> tuple[int, int, bool]:
    """Bytes and entries in the cell's own folders plus the private /tmp's bytes, and
    whether the cell's capped area is full (the kernel refused a byte or a file).

    A capped area (``tmpfs.cell_area``) is read in one ``statvfs``; folders on the host
    disk are walked, which survives any depth, name or mode (``trees.disk_usage``).
    """
    full = False
    if cell.capped:
        area = os.statvfs(cell.home.parent)
        used = (area.f_blocks - area.f_bfree) * area.f_frsize
        files = area.f_files - area.f_ffree - 1  # not its root
        full = area.f_bavail == 0 or area.f_favail == 0
    else:
        used, files = trees.disk_usage([cell.home, cell.runtime], MAX_FILES)
    for pid in pids[:1]:
        try:
            for tmpfs in PRIVATE_TMPFS:
                fs = os.statvfs(f"/proc/{pid}/root{tmpfs}")
                used += (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        except OSError:
            pass
    return used, files, full


_ENGINE_LAYOUT = code_layout("self")


def _is_engine_fork(pid: int) -> bool:
    """``pid`` is still a copy of this engine or of its zygote (forked, not yet exec'd): its
    memory is ours."""
    layout = code_layout(pid)
    return bool(layout) and layout in (_ENGINE_LAYOUT, zygote_layout())
