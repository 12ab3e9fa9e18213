"""The unshare cell, built by direct system calls in a forked child of the zygote.

No set-up program runs, and the engine never forks for a stage: ``start`` sends the
stage to the engine's zygote (``zygote.py``, a small single-threaded process started
once, ``Zygote``), whose keeper unshares the pid namespace for its children only
(``unshare(CLONE_NEWPID)`` moves no process) and forks, so the child is pid 1 of a new
pid namespace (``run_pid1``); the keeper reports pid 1's host pid and later its wait
status on a pipe the engine reads (``Sandboxed``). pid 1 dies with the keeper (the parent
death signal), the keeper with the zygote, the zygote when the engine's end of its
socket closes. pid 1 starts a session, closes every descriptor the stage must not have,
blanks its command line (a fork of the zygote would show how it was started as
/proc/1/cmdline), unshares the mount, ipc, uts and (unless the project asks for it)
network namespaces, makes every mount private, builds the tree on a fresh tmpfs
(``layout.plan``: bubblewrap's mounts, with inode caps), remounts it read-only, chroots
into it and forks the stage. The stage sets its rlimits, drops the bounding set, takes
its own uid and group with no supplementary groups, clears its capabilities, sets
no_new_privs, loads the seccomp filter (``syscalls``) last and execs. pid 1 reaps
orphans and exits with the stage's status (128 + N for a signal) when the stage's first
process ends, which ends the namespace and everything in it.

Forking costs in proportion to the memory a process maps: a fork of the engine (tens to
hundreds of MB, re-initialised after the fork as a multi-threaded interpreter must be)
was most of a stage's cost and grew with the engine; a fork of the zygote is small and
flat. The children still do as little as a forked process may: every path, option
string, argv, environment, rlimit and the BPF program is made into C buffers, and every
libc function looked up, before the fork (``Launch``); after it only those prepared
ctypes calls run (no import, no lock, no logging, no garbage collection), and errors go
to the stage's stderr as prepared bytes plus ``strerror``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import gc
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from grader.engine.sandbox import netns, warm
from grader.engine.sandbox.layout import (
    DEVICES,
    HIDDEN_BYTES,
    LIB,
    WORKSPACE,
    Cell,
    cell_plan,
    plan,
    stage_rlimits,
)
from grader.engine.sandbox.procs import code_layout
from grader.errors import SandboxError, WarmZygoteError

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NAME, PR_CAPBSET_DROP = 1, 15, 24
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAPABILITY_VERSION_3 = 0x20080522
SYS_CLOSE_RANGE = 436  # the same number on every architecture
NAME = b"sandbox"
SETUP_FAILED = 125  # like the old script's `cd ... || exit 125`
NOT_FOUND = 127

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
# Every function the children call, looked up now: a lookup after the fork could wait
# forever on a loader lock another engine thread held at the fork.
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
_syscall = _libc.syscall
_syscall.argtypes = [ctypes.c_long] * 4
_syscall.restype = ctypes.c_long
_mkdir, _symlink, _open, _close, _write = (
    _libc.mkdir,
    _libc.symlink,
    _libc.open,
    _libc.close,
    _libc.write,
)
_unshare, _waitpid, _chdir, _chroot, _sethostname = (
    _libc.unshare,
    _libc.waitpid,
    _libc.chdir,
    _libc.chroot,
    _libc.sethostname,
)
_setrlimit, _setgroups, _setresgid, _setresuid, _capset, _execve = (
    _libc.setrlimit, _libc.setgroups, _libc.setresgid, _libc.setresuid, _libc.capset,
    _libc.execve,
)  # fmt: skip
_signal, _sigprocmask, _setsid = _libc.signal, _libc.sigprocmask, _libc.setsid
# glibc 2.34+: fork without the at-fork handlers (the child only makes prepared calls)
_fork = getattr(_libc, "_Fork", None) or os.fork
_FUNCTIONS = {"mount": _mount, "symlink": _symlink}


class _RLimit(ctypes.Structure):
    _fields_ = [("soft", ctypes.c_ulong), ("hard", ctypes.c_ulong)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]  # fmt: skip


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


Step = tuple[str, tuple[Any, ...]]  # a libc function's name and its prepared arguments


@dataclass
class Launch:
    """Everything the children need, as C buffers made before the fork."""

    keep: list[int]  # descriptors the stage keeps besides 0-2
    flags: int
    build: list[tuple[Step, bytes]]  # pid 1's steps before the chroot, each with its name
    root: bytes
    workspace: bytes
    limits: list[tuple[int, _RLimit]]
    uid: int | None
    last_cap: int
    seccomp: _SockFprog | None
    programs: list[bytes]  # where the stage's program may be (PATH searched as execvp)
    argv: Any
    envp: Any
    writes: list[tuple[bytes, bytes]] = field(default_factory=list)
    # a warm stage (``warm.py``): the interpreter options and the harness's arguments, and
    # the environment ``warm.run`` gives it, instead of ``execve``
    warm: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # kept alive for the buffers' sake
    held: list[object] = field(default_factory=list)


WORD = struct.Struct("<i")  # the status pipe's records: pid 1's pid, then its wait status


@dataclass(frozen=True)
class Request:
    """One stage for the zygote (``zygote.py``). Its descriptors travel beside it, in this
    order: the status pipe, stdin, stdout, stderr, then ``pass_fds`` (placed at those
    numbers)."""

    cell: Cell
    argv: list[str]
    timeout: float
    env: dict[str, str]
    seccomp: bytes | None
    pass_fds: tuple[int, ...]
    joins: tuple[str, ...]
    warm: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # for a warm zygote


class Sandboxed:
    """pid 1 of an unshare sandbox, which the zygote's keeper started and waits for: what
    the watcher needs of a ``Popen`` (``pid``, the pipes, ``returncode``), and its end,
    read from the status pipe (``ended``, ``status``) since the engine cannot wait for a
    process that is not its child."""

    def __init__(
        self, pid: int, report: int, stdout: IO[bytes] | None, stderr: IO[bytes] | None
    ) -> None:
        self.pid, self.report = pid, report
        self.stdout, self.stderr = stdout, stderr
        self.returncode: int | None = None
        self.wait_status: int | None = None

    def ended(self) -> int:
        """A descriptor that turns readable when pid 1 has ended (for a selector)."""
        return self.report

    def status(self, *, block: bool) -> int | None:
        """pid 1's wait status once it ended (``None``: still running; ``block``: wait)."""
        if self.wait_status is None:
            if not block and not _readable([self.report], 0):
                return None
            record = _read_record(self.report, None)
            if record is None or record < 0:
                raise SandboxError("the sandbox's keeper ended without reporting how it did")
            self.wait_status = record
            self.returncode = os.waitstatus_to_exitcode(record)
            os.close(self.report)
        return self.wait_status

    def wait(self) -> int:
        self.status(block=True)
        assert self.returncode is not None
        return self.returncode

    def communicate(self, timeout: float) -> tuple[bytes, bytes]:
        """Read the pipes to their end, then wait for pid 1 (as ``Popen.communicate``)."""
        deadline = time.monotonic() + timeout
        pipes = {pipe.fileno(): pipe for pipe in (self.stdout, self.stderr) if pipe is not None}
        read: dict[int, bytes] = dict.fromkeys(pipes, b"")
        while pipes:
            left = deadline - time.monotonic()
            ready = _readable(list(pipes), left) if left > 0 else []
            if not ready:
                raise subprocess.TimeoutExpired("sandbox", timeout)
            for fd in ready:
                chunk = os.read(fd, 65536)
                read[fd] += chunk
                if not chunk:
                    del pipes[fd]
        self.wait()
        out = read.get(self.stdout.fileno(), b"") if self.stdout is not None else b""
        err = read.get(self.stderr.fileno(), b"") if self.stderr is not None else b""
        self.close()
        return out, err

    def close(self) -> None:
        """Close the pipes; the status pipe too if pid 1's end was never read."""
        for pipe in (self.stdout, self.stderr):
            if pipe is not None:
                pipe.close()
        if self.wait_status is None:
            with suppress(OSError):
                os.close(self.report)
            self.wait_status = -1


STARTUP_SECONDS = 60.0  # for the zygote to answer, however loaded the host
ZYGOTE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
# a warm zygote's interpreter starts as a stage's would (``layout.stage_env``)
WARM_ENV = {"PYTHONPATH": LIB, "PYTHONNOUSERSITE": "1"}
READY = b"ready"  # a warm zygote's first word


def start(
    cell: Cell,
    argv: Sequence[str],
    timeout: float,
    *,
    env: dict[str, str],
    seccomp: bytes | None,
    pass_fds: tuple[int, ...] = (),
    joins: Sequence[Path] = (),
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.DEVNULL,
    cwd: str | None = None,
    warm: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
    python: str | None = None,
) -> Sandboxed:
    """Start ``argv`` confined in the unshare ``cell``, through the zygote.

    ``warm`` (``warm.harness_run``'s reading of the command) and ``python`` (the
    interpreter, ``warm.interpreter``): the stage runs the harness in a fork of the warm
    zygote of ``python`` instead of exec'ing ``argv``; the cell is built the same way.

    ``stdin``, ``stdout``, ``stderr``: ``subprocess.PIPE`` (the engine's end is the
    result's ``stdout``/``stderr``; stdin is never a pipe here), ``subprocess.DEVNULL``
    or a descriptor. ``joins``: files pid 1 writes ``0`` to first thing (each cgroup's
    ``tasks`` or ``cgroup.procs``, ``Group.join_files``, which moves it and so everything
    the stage starts; the last one, a marker that says it did, is created).
    """
    assert cwd is None, "the stage starts in the workspace"
    ours: list[int] = []  # closed here once sent
    theirs: list[int] = []
    kept: dict[str, IO[bytes]] = {}
    try:
        for name, option in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            if option == subprocess.PIPE and name != "stdin":
                read, write = os.pipe2(os.O_CLOEXEC)
                kept[name] = os.fdopen(read, "rb", buffering=0)
                ours.append(write)
                theirs.append(write)
            elif option in (None, subprocess.DEVNULL):
                null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                ours.append(null)
                theirs.append(null)
            elif isinstance(option, int) and option >= 0:
                theirs.append(option)
            else:
                raise ValueError(f"unsupported {name} for a sandbox: {option!r}")
        report, report_write = os.pipe2(os.O_CLOEXEC)
        ours.append(report_write)
        request = Request(
            cell, list(argv), timeout, env, seccomp, tuple(pass_fds),
            tuple(os.fspath(path) for path in joins), warm,
        )  # fmt: skip
        zygote = Zygote.get(python if warm is not None else None)
        zygote.send(pickle.dumps(request), [report_write, *theirs, *pass_fds])
    except BaseException:
        for pipe in kept.values():
            pipe.close()
        raise
    finally:
        for fd in ours:
            os.close(fd)
    try:
        pid = _read_record(report, STARTUP_SECONDS)
        if pid is None or pid <= 0:
            raise SandboxError("the sandbox could not be started (see the stage's stderr)")
    except BaseException:
        os.close(report)
        for pipe in kept.values():
            pipe.close()
        raise
    return Sandboxed(pid, report, kept.get("stdout"), kept.get("stderr"))


def _readable(fds: list[int], seconds: float) -> list[int]:
    """Those of ``fds`` with something to read (or at their end) within ``seconds``; by
    poll, not select(), which refuses descriptors past 1023."""
    waiting = select.poll()
    for fd in fds:
        waiting.register(fd, select.POLLIN)
    return [fd for fd, _ in waiting.poll(seconds * 1000)]


def _read_record(fd: int, timeout: float | None) -> int | None:
    """One record of the status pipe (``None``: it closed first). Raises
    ``SandboxError`` past ``timeout`` seconds."""
    data = b""
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = select.poll()
    waiting.register(fd, select.POLLIN)
    while len(data) < WORD.size:
        left = None if deadline is None else max(deadline - time.monotonic(), 0) * 1000
        if not waiting.poll(left):
            raise SandboxError(f"the sandbox did not start within {timeout:.0f} s")
        chunk = os.read(fd, WORD.size - len(data))
        if not chunk:
            return None
        data += chunk
    return int(WORD.unpack(data)[0])


class Zygote:
    """The engine's zygote process (``zygote.py``): started at the first unshare stage,
    again if it ended; one per engine process. And a warm zygote per interpreter
    (``warm.py``), started at its first warm stage: ``python`` started as a stage's
    interpreter is (``-P``, the harness's lib on ``PYTHONPATH``), which says it is ready
    once it imported what the harness's pytest run needs."""

    _current: Zygote | None = None
    _warm: ClassVar[dict[str, Zygote]] = {}
    _starting = threading.Lock()

    def __init__(self, python: str | None = None) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = str(Path(__file__).resolve().parents[3])  # where ``grader`` is importable
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            f"from grader.engine.sandbox.zygote import main; "
            f"main({theirs.fileno()}, warm={root if python else None!r})"
        )
        if python is None:  # no variable, user site or cwd of ours
            argv, env = [sys.executable, "-I", "-c", code], ZYGOTE_ENV
        else:  # the stage's interpreter as the stage would start it (``warm.py``)
            argv, env = [python, "-P", "-c", code], {**ZYGOTE_ENV, **WARM_ENV}
        try:
            self.process = subprocess.Popen(
                argv,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C is the engine's to act on
                env=env,  # none of the engine's (a token): pid 1 is a fork of it
            )
        except OSError as exc:
            mine.close()
            raise SandboxError(f"cannot start the sandbox's zygote: {exc}") from exc
        finally:
            theirs.close()
        self.socket = mine
        self.sending = threading.Lock()
        self.python = python
        if python is not None:
            self._ready()
        self.layout = code_layout(self.process.pid)

    def _ready(self) -> None:
        """Wait for a warm zygote's word that it is ready; raises ``SandboxError``."""
        self.socket.settimeout(STARTUP_SECONDS)
        try:
            word = self.socket.recv(4096)
        except OSError as exc:
            word = f"no answer ({exc})".encode()
        finally:
            self.socket.settimeout(None)
        if word != READY:
            self.socket.close()
            self.process.kill()
            self.process.wait()
            said = word.decode(errors="replace") or "it ended"
            raise WarmZygoteError(f"the warm zygote of {self.python} could not start: {said}")

    @classmethod
    def get(cls, python: str | None = None) -> Zygote:
        with cls._starting:
            current = cls._current if python is None else cls._warm.get(python)
            if current is None or current.process.poll() is not None:
                if current is not None:
                    current.socket.close()
                current = cls(python)
                if python is None:
                    cls._current = current
                else:
                    cls._warm[python] = current
            return current

    def send(self, message: bytes, fds: list[int]) -> None:
        with self.sending:
            try:
                socket.send_fds(self.socket, [message], fds)
            except OSError as exc:
                raise SandboxError(f"the sandbox's zygote is gone: {exc}") from exc


def zygote_layout() -> list[str]:
    """The code and stack addresses of the running zygote (``[]``: none yet): a process
    with them is a fork of it that has not exec'd yet (pid 1, or a stage about to)."""
    current = Zygote._current
    return current.layout if current is not None else []


def fork() -> int:
    """``fork(2)`` without Python's or glibc's at-fork handlers: only for a process with
    one thread (the zygote, its keepers), where nothing can hold a lock at the fork."""
    return int(_fork())


def parent_death_signal() -> None:
    """SIGKILL this process when its parent ends."""
    if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot set the parent death signal")


def new_pid_namespace() -> None:
    """The children this process makes from now on are in a new pid namespace."""
    if _unshare(CLONE_NEWPID) != 0:
        error = ctypes.get_errno()
        raise SandboxError(f"cannot make a pid namespace: {os.strerror(error)}")


def join_writes(joins: Sequence[str]) -> list[tuple[bytes, bytes]]:
    return [(os.fsencode(path), b"0\n") for path in joins]


def prepare(
    cell: Cell,
    argv: Sequence[str],
    timeout: float,
    *,
    env: dict[str, str],
    seccomp: bytes | None,
    pass_fds: tuple[int, ...] = (),
    warm: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
) -> Launch:
    root = cell.home.parent / ".root"
    root.mkdir(exist_ok=True)
    held: list[object] = []
    build = _build(cell, root)
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if not cell.network:
        flags |= CLONE_NEWNET
    rlimits = stage_rlimits(cell.limits, timeout)
    program = None
    # A cell without a uid of its own keeps root (only a test of the harness's own
    # fallback, as a container's root, does that: the engine as root always hands out
    # uids) and, as before, no filter, which would refuse the mounts that fallback makes.
    if seccomp is not None and cell.uid is not None:
        buffer = ctypes.create_string_buffer(seccomp, len(seccomp))
        program = _SockFprog(len(seccomp) // 8, ctypes.addressof(buffer))
        held.append(buffer)
    encoded = [os.fsencode(arg) for arg in argv]
    environment = [f"{key}={value}".encode() for key, value in env.items()]
    c_argv = (ctypes.c_char_p * (len(encoded) + 1))(*encoded, None)
    c_envp = (ctypes.c_char_p * (len(environment) + 1))(*environment, None)
    held += [encoded, environment]
    return Launch(
        keep=sorted(pass_fds),
        flags=flags,
        build=build,
        root=os.fsencode(root),
        workspace=WORKSPACE.encode(),
        limits=[(resource, _RLimit(value, value)) for resource, value in rlimits],
        uid=cell.uid,
        last_cap=_last_cap(),
        seccomp=program,
        programs=_candidates(encoded[0], env.get("PATH", "")),
        argv=c_argv,
        envp=c_envp,
        held=held,
        warm=warm,
        env=dict(env) if warm is not None else {},
    )


@functools.lru_cache(maxsize=64)
def _build(cell: Cell, root: Path) -> list[tuple[Step, bytes]]:
    """pid 1's calls before the chroot (the same for every stage of a cell)."""
    build: list[tuple[Step, bytes]] = [
        (("mount", (None, b"/", None, MS_REC | MS_PRIVATE, None)), b"private mounts"),
        (("mount", (b"sandbox-root", os.fsencode(root), b"tmpfs", MS_NOSUID | MS_NODEV,
                    b"mode=0755,size=1m")), b"the root tmpfs"),
    ]  # fmt: skip
    for mount in plan(cell_plan(cell)):
        build += _steps(mount.op, os.fsencode(root) + os.fsencode(mount.dest), mount)
    read_only = MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    build.append((("mount", (None, os.fsencode(root), None, read_only, None)), b"read-only root"))
    return build


def _steps(op: str, dest: bytes, mount: Any) -> list[tuple[Step, bytes]]:
    """pid 1's calls for one ``layout.Mount`` (as the old shell script's commands)."""
    source = os.fsencode(mount.source)
    what = b"%s %s" % (op.encode(), os.fsencode(mount.dest))
    nosuid = MS_NOSUID | MS_NODEV
    if op == "dir":
        return [(("mkdirs", (dest, 0o755)), what)]
    if op == "symlink":
        return [(("symlink", (source, dest)), what)]
    if op in ("ro", "rw", "capped"):
        folder = Path(mount.source).is_dir()
        make: Step = ("mkdirs", (dest, 0o755)) if folder else ("touch", (dest,))
        remount = MS_REMOUNT | MS_BIND | nosuid | (MS_RDONLY if op == "ro" else 0)
        return [
            (make, what),
            (("mount", (source, dest, None, MS_BIND, None)), what),
            (("mount", (None, dest, None, remount, None)), what),
        ]
    if op == "tmpfs":
        options = b"mode=1777,size=%d" % mount.size + (b",nr_inodes=%d" % mount.files
                                                       if mount.files else b"")  # fmt: skip
        return [(("mkdirs", (dest, 0o755)), what),
                (("mount", (b"tmpfs", dest, b"tmpfs", nosuid, options)), what)]  # fmt: skip
    if op == "hidden":
        options = b"mode=0555,size=%d,nr_inodes=16" % HIDDEN_BYTES
        return [(("mkdirs", (dest, 0o755)), what),
                (("mount", (b"hidden", dest, b"tmpfs", nosuid, options)), what)]  # fmt: skip
    if op == "proc":
        proc = nosuid | MS_NOEXEC
        return [(("mkdirs", (dest, 0o555)), what),
                (("mount", (b"proc", dest, b"proc", proc, None)), what)]  # fmt: skip
    assert op == "dev", op
    if mount.source:  # the engine's prepared one (``tmpfs.system_dev``): devices allowed
        return [
            (("mkdirs", (dest, 0o755)), what),
            (("mount", (source, dest, None, MS_BIND, None)), what),
            (("mount", (None, dest, None, MS_REMOUNT | MS_BIND | MS_NOSUID, None)), what),
        ]
    steps: list[tuple[Step, bytes]] = [
        (("mkdirs", (dest, 0o755)), what),
        (("mount", (b"dev", dest, b"tmpfs", MS_NOSUID, b"mode=0755,size=64k")), what),
    ]
    for name in DEVICES:
        node, device = b"%s/%s" % (dest, name.encode()), b"/dev/" + name.encode()
        steps.append((("touch", (node,)), what))
        steps.append((("mount", (device, node, None, MS_BIND, None)), what))
    steps.append((("symlink", (b"/proc/self/fd", dest + b"/fd")), what))
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        link = b"/proc/self/fd/%d" % number
        steps.append((("symlink", (link, b"%s/%s" % (dest, name.encode()))), what))
    return steps


def _candidates(program: bytes, path: str) -> list[bytes]:
    """Where execvp would look for ``program`` inside, in order."""
    if b"/" in program:
        return [program]
    folders = [os.fsencode(folder or ".") for folder in path.split(":")] if path else []
    return [folder + b"/" + program for folder in folders or [b"/usr/bin", b"/bin"]]


@functools.cache
def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


@functools.cache
def _cmdline() -> tuple[int, int] | None:
    """This process's command-line memory (start, end): pid 1 blanks it, so it
    (a fork of the engine) shows no engine argument such as ``--data``."""
    try:
        stat = Path("/proc/self/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, ValueError, IndexError):
        return None


_cmdline()  # read while this process is the engine, before any fork
_NAME = ctypes.create_string_buffer(NAME)
_OOM_ADJUST = b"/proc/self/oom_score_adj"
_EMPTY_SIGSET = ctypes.create_string_buffer(128)
_STATUS = ctypes.c_int(0)
_SIGNALS = [number for number in range(1, signal.NSIG) if number not in (9, 19, 32, 33)]


# After the fork: prepared calls only ----------------------------------------------------------


class _SetupError(Exception):
    pass


def _call(step: Step, what: bytes) -> None:
    name, args = step
    if name == "mkdirs":
        _mkdirs(args[0], args[1], what)
        return
    if name == "touch":
        # read-only: a file already there (a mount point in a read-only bind) is kept
        fd = _open(args[0], os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if fd < 0:
            _fail(what)
        _close(fd)
        return
    if _FUNCTIONS[name](*args) != 0:
        _fail(what)


def _mkdirs(path: bytes, mode: int, what: bytes) -> None:
    """``mkdir -p``: the missing folders down to ``path``, the last one ``mode``.

    ``path`` itself first: the plan makes every folder before what goes in it, so its
    parent is nearly always there (one call, not one per component of the host path)."""
    if _mkdir(path, mode) == 0 or ctypes.get_errno() == errno.EEXIST:
        return
    if ctypes.get_errno() != errno.ENOENT:
        _fail(what)
    at = 1
    while at >= 0:
        at = path.find(b"/", at + 1)
        part = path if at < 0 else path[:at]
        if _mkdir(part, mode if at < 0 else 0o755) != 0 and ctypes.get_errno() != errno.EEXIST:
            _fail(what)


def _fail(what: bytes) -> None:
    error = ctypes.get_errno()
    message = b"sandbox: %s: %s\n" % (what, os.strerror(error).encode())
    os.write(2, message)
    raise _SetupError


def _exit_with(status: int) -> None:
    """Exit as the process whose wait status is ``status`` ended (a signal: 128 + N)."""
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def run_pid1(launch: Launch) -> None:
    """pid 1 (the zygote keeper's child): build the tree, chroot, run the stage, reap,
    exit with the stage's status. Never returns."""
    gc.disable()
    try:
        _setsid()  # a session of its own: the engine kills it and all it started at once
        for number in _SIGNALS:
            _signal(number, 0)  # SIG_DFL: the engine's handlers run no more here
        _sigprocmask(2, _EMPTY_SIGSET, None)
        _close_all_but(launch.keep)  # the keeper's status pipe too
        # (the parent is outside the namespace: getppid() says 0, nothing to check)
        if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _fail(b"parent death signal")
        _blank_cmdline()
        for index, (path, text) in enumerate(launch.writes):
            create = os.O_CREAT | os.O_TRUNC if index == len(launch.writes) - 1 else 0
            fd = _open(path, os.O_WRONLY | os.O_CLOEXEC | create, 0o600)
            if fd < 0 or _write(fd, text, len(text)) != len(text):
                _fail(b"join " + path)
            _close(fd)
        _put(_OOM_ADJUST, b"-1000")  # the cgroup's OOM killer takes the stage, never pid 1
        if _unshare(launch.flags) != 0:
            _fail(b"unshare")
        if launch.flags & CLONE_NEWNET:  # its loopback up, as in one made ahead (netns)
            try:
                netns.loopback_up()
            except OSError:
                _fail(b"loopback")
        _prctl(PR_SET_NAME, ctypes.addressof(_NAME), 0, 0, 0)
        for step, what in launch.build:
            _call(step, what)
        if _chdir(launch.root) != 0 or _chroot(b".") != 0:
            _fail(b"chroot")
        _sethostname(NAME, len(NAME))
        # a warm stage goes on in Python: it needs the interpreter's after-fork work
        stage = os.fork() if launch.warm is not None else _fork()
        if stage == 0:
            _stage(launch)
        while True:
            pid = _waitpid(-1, ctypes.byref(_STATUS), 0)
            if pid == stage:
                _exit_with(_STATUS.value)
            if pid < 0 and ctypes.get_errno() != 4:
                _fail(b"wait")
    except _SetupError:
        pass
    except BaseException:  # noqa: BLE001 (a forked child never unwinds into the engine)
        os.write(2, b"sandbox: unexpected failure in pid 1\n")
    os._exit(SETUP_FAILED)


def _stage(launch: Launch) -> None:
    """The stage: limits, identity, no capabilities, no_new_privs, seccomp, exec."""
    try:
        if _chdir(launch.workspace) != 0:
            _fail(b"cd " + launch.workspace)
        _put(_OOM_ADJUST, b"0")
        for resource, limit in launch.limits:
            if _setrlimit(resource, ctypes.byref(limit)) != 0:
                _fail(b"rlimit")
        if launch.uid is not None:
            for cap in range(launch.last_cap + 1):
                if _prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:
                    _fail(b"bounding set")
            uid = launch.uid
            if _setgroups(0, None) != 0 or _setresgid(uid, uid, uid) != 0:
                _fail(b"group")
            if _setresuid(uid, uid, uid) != 0:
                _fail(b"uid")
            header = _CapHeader(CAPABILITY_VERSION_3, 0)
            data = (_CapData * 2)()
            if _capset(ctypes.byref(header), data) != 0:
                _fail(b"capabilities")
            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        if _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            _fail(b"no_new_privs")
        if launch.seccomp is not None:
            filter_at = ctypes.addressof(launch.seccomp)
            if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter_at, 0, 0) != 0:
                _fail(b"seccomp")
        if launch.warm is not None:
            options, args = launch.warm
            warm.run(args, options, launch.env)  # never returns
        for program in launch.programs:
            _execve(program, launch.argv, launch.envp)
        _fail(b"cannot run " + launch.programs[-1])
    except _SetupError:
        os._exit(NOT_FOUND if ctypes.get_errno() in (2, 13) else SETUP_FAILED)
    except BaseException:  # noqa: BLE001 (a forked child never unwinds into the engine)
        os.write(2, b"sandbox: unexpected failure in the stage\n")
    os._exit(SETUP_FAILED)


def _put(path: bytes, text: bytes) -> None:
    """Write ``text`` to ``path`` if it can be (no such file: nothing)."""
    fd = _open(path, os.O_WRONLY | os.O_CLOEXEC)
    if fd >= 0:
        _write(fd, text, len(text))
        _close(fd)


def _close_all_but(keep: list[int]) -> None:
    low = 3
    for fd in [*keep, -1]:
        high = fd - 1 if fd >= 0 else 0xFFFFFFFF
        if high >= low and _syscall(SYS_CLOSE_RANGE, low, high, 0) != 0:
            os.closerange(low, high + 1 if fd >= 0 else 65536)
        low = fd + 1


def _blank_cmdline() -> None:
    where = _cmdline()
    if where is None:
        return
    begin, end = where
    if end > begin:
        ctypes.memset(begin, 0, end - begin)
        ctypes.memmove(begin, NAME, min(len(NAME), end - begin - 1))
