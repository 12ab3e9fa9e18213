"""Confine one stage of a submission: namespaces, a private uid, resource limits.

Student code is hostile. Each stage runs ``/bin/sh -c <command>`` in a fresh sandbox:

* **bubblewrap** (preferred) or **unshare** + chroot: new mount, pid, ipc, uts and (unless
  the project asks for it) network namespaces. The stage sees only read-only system
  directories (``/usr``, ``/lib*``, the ``/etc`` pieces toolchains need), the exact
  prefixes of the Python the engine runs in, the project's extra read-only paths, and
  the submission's own directories (layout below). No ``/root``, no ``/home``, no course
  folder, no engine data, no other submission. When the stage's first process ends, the
  pid namespace goes and takes every process with it.
* **rlimits** (last resort, loud warning): no isolation at all, only the limits below.

In every kind the stage runs as a uid of its own (``SANDBOX_UID_BASE`` + n, one per
running submission) when the engine is root, so ``RLIMIT_NPROC`` binds (it never binds
root) and the stage owns nothing but its own files; ``setpriv`` drops every capability.
``prlimit`` sets address space, processes, open files, file size, CPU seconds and no core
files. Memory is watched from outside (the sum of the stage's resident anonymous memory,
every ``POLL_SECONDS``): past the limit the stage is killed with SIGKILL.

Disk (our choice): ``/tmp`` is a tmpfs of ``disk_mb``; the home, workspace and runtime
folders live on the host disk, every file is capped by ``RLIMIT_FSIZE``, and a watcher
walks them (with the tmpfs's usage) a few times a second and kills the stage past
``disk_mb``. A burst between two walks can overshoot by what the disk writes in that
time, never without bound.

Layout inside (bubblewrap, unshare)::

    /home/user               the submission's home (writable; host: work_dir/home)
    /home/user/workspace     the workspace: project files + the submission, ro paths pinned
    /sphere-engine/bin       se_utils_cli (read-only, first on PATH)
    /sphere-engine/runtime   unit-tests XML, tests report, scenario result (writable)
    /sphere-engine/streams   earlier stages' outputs (read-only)
    /tmp                     private tmpfs
"""

from __future__ import annotations

import fcntl
import functools
import math
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from grader.engine.spec import Cancel, Limits
from grader.errors import SandboxError

SandboxKind = Literal["bubblewrap", "unshare", "rlimits"]
KINDS: tuple[SandboxKind, ...] = ("bubblewrap", "unshare", "rlimits")

SANDBOX_UID_BASE = 3_000_000  # far above login users, systemd's dynamic users and subuid ranges
SANDBOX_UIDS = 256  # submissions that may run at once in one engine process
INNER_UID = 1000  # the uid a stage sees when the engine is not root (user namespace)
POLL_SECONDS = 0.05  # memory, time and cancel checks
DISK_POLL_SECONDS = POLL_SECONDS  # at least; a slow walk (many files) spaces them out
MAX_FILES = 100_000  # entries in the writable folders; more is a disk-limit kill
SWEEP_SECONDS = 3.0  # how long leftovers may take to die before it is an engine fault
MB = 1024 * 1024

HOME = "/home/user"
WORKSPACE = f"{HOME}/workspace"
TOOLKIT = "/sphere-engine/bin"
RUNTIME = "/sphere-engine/runtime"
STREAMS = "/sphere-engine/streams"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (  # what dynamic linking, locales, DNS-less name lookups and compilers read
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "protocols",
    "services",
    "mime.types",
)
ETC_NETWORK = ("resolv.conf", "ssl", "ca-certificates", "gai.conf")


@dataclass(frozen=True)
class SandboxInfo:
    """How strongly this machine confines student code (``grader doctor`` prints it)."""

    kind: SandboxKind
    detail: str
    warning: str | None = None


@dataclass(frozen=True)
class Cell:
    """One submission's confinement: its host folders, what it may read, limits, identity.

    ``home``, ``runtime``, ``streams`` and ``toolkit`` are host folders; ``read_only`` are
    workspace paths pinned read-only; ``readable`` are host paths shown read-only at the
    same place. ``uid`` is the submission's own uid (``None``: the engine is not root).
    """

    kind: SandboxKind
    home: Path
    runtime: Path
    streams: Path
    toolkit: Path
    etc: Path
    uid: int | None
    limits: Limits
    read_only: tuple[str, ...] = ()
    readable: tuple[str, ...] = ()
    network: bool = False

    @property
    def workspace(self) -> Path:
        return self.home / "workspace"

    def inside(self, place: Literal["home", "workspace", "runtime", "streams", "toolkit"]) -> str:
        """Where ``place`` is as the stage sees it (host paths when nothing is isolated)."""
        if self.kind == "rlimits":
            return str(getattr(self, place))
        return {
            "home": HOME,
            "workspace": WORKSPACE,
            "runtime": RUNTIME,
            "streams": STREAMS,
            "toolkit": TOOLKIT,
        }[place]


@dataclass(frozen=True)
class StageExit:
    """How a confined stage ended. ``over``: the limit it was killed for, if any."""

    exit_code: int | None
    signal: int | None
    seconds: float
    peak_kb: int
    timed_out: bool = False
    over: Literal["memory", "disk"] | None = None
    cancelled: bool = False


# Detection --------------------------------------------------------------------------------


@functools.cache
def detect_sandbox() -> SandboxInfo:
    """The strongest sandbox that works here, decided by running a real probe of each."""
    problems = []
    for kind in ("bubblewrap", "unshare"):
        problem = probe_sandbox(kind)
        if problem is None:
            return SandboxInfo(kind, _describe(kind))
        problems.append(f"{kind}: {problem}")
    missing = probe_sandbox("rlimits")
    limits = f"no resource limits either ({missing})" if missing else "resource limits only"
    return SandboxInfo(
        "rlimits",
        _describe("rlimits"),
        warning=(
            "STUDENT CODE RUNS WITHOUT ISOLATION: it can read this machine's files (the "
            f"course, other submissions), use the network and outlive its stage; {limits}. "
            f"Install bubblewrap (apt-get install bubblewrap). Why: {'; '.join(problems)}"
        ),
    )


def probe_sandbox(kind: SandboxKind) -> str | None:
    """``None`` if a ``kind`` sandbox starts and runs ``true`` here, else why not."""
    tools = _tools(kind)
    if isinstance(tools, str):
        return tools
    with sandbox_uid() as uid:
        argv = _launch(uid, Limits(), 5.0, "true")
        if kind == "bubblewrap":
            tmp = ["--perms", "1777", "--size", str(MB), "--tmpfs", "/tmp"]  # noqa: S108
            argv = [_which("bwrap"), *_namespace_flags(uid, network=False), *tmp, *_system_args(),
                    *argv]  # fmt: skip
        elif kind == "unshare":
            argv = [*_unshare_prefix(network=False, extra=("--mount-proc",)), *argv]
        try:
            env = _base_env("/", "/", "/tmp")  # noqa: S108
            done = subprocess.run(argv, env=env, capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot start: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return f"exit {done.returncode}: {said[-1] if said else 'no message'}"
    return None


def _tools(kind: SandboxKind) -> dict[str, str] | str:
    names = {"bubblewrap": ["bwrap"], "unshare": ["unshare", "chroot", "mount"], "rlimits": []}
    names[kind] += ["prlimit"] + (["setpriv"] if os.geteuid() == 0 else [])
    if kind == "unshare" and os.geteuid() != 0:
        return "needs root"
    found = {name: shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") for name in names[kind]}
    missing = [name for name, path in found.items() if path is None]
    return f"{', '.join(missing)} not found" if missing else {k: str(v) for k, v in found.items()}


def _which(name: str) -> str:
    return shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or name


def _describe(kind: SandboxKind) -> str:
    who = "a private uid per submission" if os.geteuid() == 0 else "a user namespace"
    if kind == "bubblewrap":
        version = subprocess.run([_which("bwrap"), "--version"], capture_output=True, text=True)
        name = version.stdout.strip() or "bubblewrap"
        return f"{name}: mount, pid, ipc, uts and network namespaces, {who}, rlimits"
    if kind == "unshare":
        return f"unshare + chroot: mount, pid, ipc, uts and network namespaces, {who}, rlimits"
    return f"prlimit only, {who if os.geteuid() == 0 else 'the engine user'}"


# Identity ---------------------------------------------------------------------------------


class _UidPool:
    """Hands out sandbox uids; one is never shared by two running submissions.

    Two engine processes on one host (``grader grade`` and ``grader engine serve``) must
    not share one either, or one's sweep would kill the other's stage: each uid in use is
    held by an exclusive ``flock`` on a lock file, which the kernel drops if we die.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # uid -> lock file descriptor

    def take(self) -> int:
        with self._lock:
            for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UIDS):
                if uid in self._held:
                    continue
                fd = _try_lock(uid)
                if fd is None:
                    continue
                if _processes_of(uid):  # left over from a crashed engine: not ours to use
                    os.close(fd)
                    continue
                self._held[uid] = fd
                return uid
        raise SandboxError(f"all {SANDBOX_UIDS} sandbox uids are in use")

    def give_back(self, uid: int) -> None:
        with self._lock:
            fd = self._held.pop(uid, None)
        if fd is not None:
            os.close(fd)


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
            if in_range and not _is_zombie(entry.name):
                owners.setdefault(uid, []).append(int(entry.name))
    leaked = []
    for uid, pids in sorted(owners.items()):
        fd = None if uid in _POOL._held else _try_lock(uid)
        if fd is not None:  # nobody holds the uid, yet it has processes
            os.close(fd)
            leaked += pids
    return leaked


def _lock_folder() -> Path:
    run_lock = Path("/run/lock")
    return run_lock if os.access(run_lock, os.W_OK) else Path(tempfile.gettempdir())


def _try_lock(uid: int) -> int | None:
    path = _lock_folder() / f"grader-sandbox-uid-{uid}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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


# Command lines (pure) -----------------------------------------------------------------------


def stage_argv(cell: Cell, command: str, timeout: float) -> list[str]:
    """The host command line that runs ``/bin/sh -c command`` confined in ``cell``."""
    launch = _launch(cell.uid, cell.limits, timeout, command)
    if cell.kind == "bubblewrap":
        return [
            _which("bwrap"),
            *_namespace_flags(cell.uid, network=cell.network),
            *_system_args(network=cell.network),
            *_cell_args(cell),
            "--chdir",
            WORKSPACE,
            "--remount-ro",
            "/",
            *launch,
        ]
    if cell.kind == "unshare":
        script = _chroot_script(cell)
        return [*_unshare_prefix(cell.network), "/bin/sh", "-c", script, "sandbox", *launch]
    return launch


def stage_env(cell: Cell, extra: dict[str, str]) -> dict[str, str]:
    """The stage's whole environment, built from nothing (no host variable, no token)."""
    # Without a private /tmp, temporary files go to the home the disk watcher walks.
    tmp = f"{cell.home}/.tmp" if cell.kind == "rlimits" else "/tmp"  # noqa: S108
    return {**_base_env(cell.inside("home"), cell.inside("toolkit"), tmp), **extra}


def _base_env(home: str, toolkit: str, tmp: str) -> dict[str, str]:
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix])
    python_bins = [f"{prefix}/bin" for prefix in prefixes]
    path = [toolkit, *python_bins, "/usr/local/bin", "/usr/bin", "/bin"]
    return {
        "PATH": ":".join(path),
        "HOME": home,
        "USER": "user",
        "LOGNAME": "user",
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
        "TMPDIR": tmp,
    }


def _launch(uid: int | None, limits: Limits, timeout: float, command: str) -> list[str]:
    """setpriv (drop to ``uid``, no capabilities) -> prlimit -> ``/bin/sh -c command``."""
    drop = []
    if uid is not None:
        drop = [
            _which("setpriv"),
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    cap = [
        _which("prlimit"),
        f"--as={address_space_bytes(limits)}",
        f"--nproc={limits.processes}",
        f"--nofile={limits.open_files}",
        f"--fsize={limits.file_size_mb * MB}",
        f"--cpu={math.ceil(timeout) + 1}",
        "--core=0",
        "--",
    ]
    return [*drop, *cap, "/bin/sh", "-c", command]


def address_space_bytes(limits: Limits) -> int:
    """RLIMIT_AS: a backstop well above the memory limit (virtual size exceeds resident)."""
    return max(2 * limits.memory_mb, limits.memory_mb + 1024) * MB


def _namespace_flags(uid: int | None, *, network: bool) -> list[str]:
    flags = ["--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid"]
    flags += ["--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if not network:
        flags.append("--unshare-net")
    if uid is None:  # not root: a user namespace is the only way in (and no nested ones)
        flags += ["--unshare-user", "--uid", str(INNER_UID), "--gid", str(INNER_UID)]
        flags.append("--disable-userns")
    return flags


@dataclass(frozen=True)
class Mount:
    """One step of building the sandbox's file system (rendered for bwrap or a script)."""

    op: Literal["ro", "rw", "symlink", "dir", "tmpfs", "proc", "dev"]
    dest: str
    source: str = ""
    size: int = 0


def system_mounts(*, network: bool = False) -> list[Mount]:
    """Read-only system directories and the ``/etc`` pieces, as this host lays them out."""
    mounts = []
    for path in SYSTEM_DIRS:
        if Path(path).is_symlink():
            mounts.append(Mount("symlink", path, str(Path(path).readlink())))
        elif Path(path).is_dir():
            mounts.append(Mount("ro", path, path))
    for name in ETC_FILES + (ETC_NETWORK if network else ()):
        if os.path.lexists(f"/etc/{name}"):
            mounts.append(Mount("ro", f"/etc/{name}", f"/etc/{name}"))
    return [*mounts, Mount("proc", "/proc"), Mount("dev", "/dev")]


def cell_mounts(cell: Cell) -> list[Mount]:
    """The submission's folders, the pinned read-only paths and the readable host paths."""
    mounts = [
        Mount("ro", "/etc/passwd", str(cell.etc / "passwd")),
        Mount("ro", "/etc/group", str(cell.etc / "group")),
        Mount("tmpfs", "/tmp", size=cell.limits.disk_mb * MB),  # noqa: S108
    ]
    mounts += [Mount("ro", path, path) for path in readable_paths(cell.readable)]
    mounts.append(Mount("rw", HOME, str(cell.home)))
    for relative in cell.read_only:
        mounts.append(Mount("ro", f"{WORKSPACE}/{relative}", str(cell.workspace / relative)))
    mounts += [
        Mount("rw", RUNTIME, str(cell.runtime)),
        Mount("ro", STREAMS, str(cell.streams)),
        Mount("ro", TOOLKIT, str(cell.toolkit)),
    ]
    return mounts


def readable_paths(paths: Sequence[str]) -> list[str]:
    """Absolute, existing host paths, minus those already visible under another or ``/usr``."""
    chosen: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths if p.startswith("/")}):
        if path == "/" or not Path(path).exists():
            continue
        if any(_under(path, other) for other in [*chosen, "/usr"]):
            continue
        chosen.append(path)
    return chosen


def _under(path: str, other: str) -> bool:
    return path == other or path.startswith(other.rstrip("/") + "/")


def _parents(mounts: Sequence[Mount]) -> list[str]:
    """Folders to create (0755) before mounting: bwrap would make them 0700, unreadable."""
    covered = [m.dest for m in mounts if m.op in ("ro", "rw", "tmpfs")]
    parents: set[str] = set()
    for mount in mounts:
        for parent in PurePosixPath(mount.dest).parents:
            text = str(parent)
            if text != "/" and not any(_under(text, c) for c in covered):
                parents.add(text)
    return sorted(parents, key=lambda p: (p.count("/"), p))


def _system_args(*, network: bool = False) -> list[str]:
    return _bwrap_mounts(system_mounts(network=network))


def _cell_args(cell: Cell) -> list[str]:
    return _bwrap_mounts(cell_mounts(cell))


def _bwrap_mounts(mounts: Sequence[Mount]) -> list[str]:
    args: list[str] = []
    for parent in _parents(mounts):
        args += ["--perms", "0755", "--dir", parent]
    for m in mounts:
        if m.op == "ro":
            args += ["--ro-bind", m.source, m.dest]
        elif m.op == "rw":
            args += ["--bind", m.source, m.dest]
        elif m.op == "symlink":
            args += ["--symlink", m.source, m.dest]
        elif m.op == "tmpfs":
            args += ["--perms", "1777", "--size", str(m.size), "--tmpfs", m.dest]
        elif m.op == "proc":
            args += ["--proc", m.dest]
        elif m.op == "dev":
            args += ["--dev", m.dest]
    return args


def _unshare_prefix(network: bool, extra: Sequence[str] = ()) -> list[str]:
    flags = ["--mount", "--pid", "--fork", "--kill-child", "--ipc", "--uts", *extra]
    return [_which("unshare"), *flags, *([] if network else ["--net"]), "--"]


DEVICES = ("null", "zero", "full", "random", "urandom")


def _chroot_script(cell: Cell) -> str:
    """A root shell script (in the new namespaces) that builds the tree, then chroots.

    It stays pid 1 and waits, so the stage's own processes never become the namespace's
    init (which ignores signals) and the namespace dies with it.
    """
    root = shlex.quote(str(cell.home.parent / ".root"))
    mount = shlex.quote(_which("mount"))
    lines = [
        "set -eu",
        f"R={root}",
        'mkdir -p "$R"',
        f'{mount} -t tmpfs -o mode=0755,size=1m sandbox-root "$R"',
    ]
    mounts = [*system_mounts(network=cell.network), *cell_mounts(cell)]
    lines += [f'mkdir -p -m 0755 "$R"{shlex.quote(p)}' for p in _parents(mounts)]
    for m in mounts:
        lines += _script_mount(m, mount)
    lines += [
        f'{mount} -o remount,ro "$R"',
        'trap "" TERM INT',
        f'{shlex.quote(_which("chroot"))} "$R" /bin/sh -c {shlex.quote(_ENTER)} sh "$@" &',
        "wait $! || exit $?",
    ]
    return "\n".join(lines)


_ENTER = f'cd {WORKSPACE} && exec "$@"'


def _script_mount(m: Mount, mount: str) -> list[str]:
    dest = f'"$R"{shlex.quote(m.dest)}'
    source = shlex.quote(m.source)
    if m.op in ("ro", "rw"):
        make = f"if [ -d {source} ]; then mkdir -p {dest}; else touch {dest}; fi"
        lines = [make, f"{mount} --bind {source} {dest}"]
        if m.op == "ro":
            lines.append(f"{mount} -o remount,ro,bind {dest}")
        return lines
    if m.op == "symlink":
        return [f"ln -s {source} {dest}"]
    if m.op == "tmpfs":
        return [f"mkdir -p {dest}", f"{mount} -t tmpfs -o mode=1777,size={m.size} tmpfs {dest}"]
    if m.op == "proc":
        return [f"mkdir -p {dest}", f"{mount} -t proc proc {dest}"]
    lines = [f"mkdir -p {dest}", f"{mount} -t tmpfs -o mode=0755,size=64k dev {dest}"]
    for name in DEVICES:
        lines += [f"touch {dest}/{name}", f"{mount} --bind /dev/{name} {dest}/{name}"]
    lines += [f"ln -s /proc/self/fd {dest}/fd", f"mkdir -m 1777 {dest}/shm"]
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        lines.append(f"ln -s /proc/self/fd/{number} {dest}/{name}")
    return lines


# Running a stage (I/O) --------------------------------------------------------------------


def run_stage(
    cell: Cell,
    command: str,
    *,
    timeout: float,
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    cancel: Cancel | None = None,
) -> StageExit:
    """Run ``command`` confined in ``cell``; returns when it and all it started are gone.

    Output goes to ``stdout``/``stderr``, each capped at ``limits.output_bytes`` with a
    marker line. Raises ``SandboxError`` only for faults of the engine, never the stage's.
    """
    argv = stage_argv(cell, command, timeout)
    cwd = str(cell.workspace) if cell.kind == "rlimits" else None
    cap = cell.limits.output_bytes
    with _Capped(stdout, cap) as out, _Capped(stderr, cap) as err:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox: {exc}") from exc
        watch = _Watch(cell, process, timeout, cancel)
        try:
            return watch.run(out, err)
        finally:
            watch.kill()
            _close(process)
            if cell.uid is not None and not _sweep(cell.uid):
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


_Ending = Literal["exited", "timeout", "cancel", "memory", "disk"]


class _Watch:
    """Pumps output and enforces time, memory, disk and cancel until the stage ends."""

    def __init__(
        self, cell: Cell, process: subprocess.Popen[bytes], timeout: float, cancel: Cancel | None
    ) -> None:
        self.cell, self.process, self.timeout, self.cancel = cell, process, timeout, cancel
        self.started = time.monotonic()
        self.peak_kb = 0
        self.status: tuple[int, int] | None = None  # wait status, ru_maxrss
        self.disk_every = DISK_POLL_SECONDS
        self.next_disk = self.started + self.disk_every
        self.pids: list[int] = []

    def run(self, out: _Capped, err: _Capped) -> StageExit:
        pipes = {self.process.stdout: out, self.process.stderr: err}
        with selectors.DefaultSelector() as selector:
            for pipe in pipes:
                assert pipe is not None
                os.set_blocking(pipe.fileno(), False)
                selector.register(pipe, selectors.EVENT_READ)
            ended = self._supervise(selector, pipes)
            self.kill()
            self._drain(selector, pipes, until=time.monotonic() + 1.0)
        seconds = time.monotonic() - self.started
        assert self.status is not None  # kill() waited
        peak = max(self.peak_kb, self.status[1])
        if ended == "exited":
            code, sig = _decode(self.status[0])
            return StageExit(code, sig, seconds, peak)
        if ended == "timeout":
            return StageExit(None, None, seconds, peak, timed_out=True)
        if ended == "cancel":
            return StageExit(None, None, seconds, peak, cancelled=True)
        return StageExit(None, signal.SIGKILL, seconds, peak, over=ended)

    def _supervise(self, selector: selectors.BaseSelector, pipes: dict) -> _Ending:  # type: ignore[type-arg]
        deadline = self.started + self.timeout
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid == self.process.pid:
                self.status = (status, usage.ru_maxrss)
                # reaped here (wait4 gives the peak memory); Popen must not wait again
                self.process.returncode = os.waitstatus_to_exitcode(status)
                return "exited"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if self.cancel is not None and self.cancel.is_set():
                return "cancel"
            over = self._check_limits(now)
            if over is not None:
                return over
            self._pump(selector, pipes, min(POLL_SECONDS, deadline - now))

    def _check_limits(self, now: float) -> Literal["memory", "disk"] | None:
        self.pids = _stage_processes(self.cell.uid, self.process.pid)
        used = sum(_resident_kb(pid) for pid in self.pids)
        self.peak_kb = max(self.peak_kb, used)
        if used > self.cell.limits.memory_mb * 1024:
            return "memory"
        if now >= self.next_disk:
            began = time.monotonic()
            tmp_of = self.pids[:1] if self.cell.kind != "rlimits" else []  # a private /tmp
            used_bytes, files = _disk_usage([self.cell.home, self.cell.runtime], tmp_of)
            took = time.monotonic() - began
            self.disk_every = max(DISK_POLL_SECONDS, 20 * took)
            self.next_disk = now + self.disk_every
            if used_bytes > self.cell.limits.disk_mb * MB or files > MAX_FILES:
                return "disk"
        return None

    def _pump(self, selector: selectors.BaseSelector, pipes: dict, wait: float) -> bool:  # type: ignore[type-arg]
        """Move what is readable into the stream files; False once every pipe is closed."""
        if not selector.get_map():
            time.sleep(max(wait, 0))
            return False
        for key, _ in selector.select(timeout=max(wait, 0)):
            data = os.read(key.fd, 65536)
            if data:
                pipes[key.fileobj].write(data)
            else:
                selector.unregister(key.fileobj)
        return bool(selector.get_map())

    def _drain(self, selector: selectors.BaseSelector, pipes: dict, until: float) -> None:  # type: ignore[type-arg]
        while time.monotonic() < until and self._pump(selector, pipes, 0.05):
            pass

    def kill(self) -> None:
        """SIGKILL the stage: its sandbox (the pid namespace goes with it) or process group,
        then whatever still runs under its uid (a daemon that left the group)."""
        if self.status is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            self.status = (status, usage.ru_maxrss)
        if self.cell.uid is not None:
            _sweep(self.cell.uid, seconds=0)


def _decode(status: int) -> tuple[int | None, int | None]:
    """Exit code and signal; a shell reports a child's death by signal N as exit 128+N."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    code = os.waitstatus_to_exitcode(status)
    if 128 < code < 128 + 32:
        return None, code - 128
    return code, None


def _close(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


# Processes and usage (reading /proc) ------------------------------------------------------


def _processes_of(uid: int) -> list[int]:
    """Live (not zombie) processes whose owner is ``uid``."""
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid == uid and not _is_zombie(entry.name):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _is_zombie(pid: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith(("Z", "X"))


def _stage_processes(uid: int | None, root: int) -> list[int]:
    """The stage's processes: by its uid, or (not root) by descent from ``root``."""
    if uid is not None:
        return _processes_of(uid)
    parents: dict[int, int] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                try:
                    stat = Path(f"/proc/{entry.name}/stat").read_text()
                    parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
    family, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sorted(family)


def _resident_kb(pid: int) -> int:
    """Anonymous + shared-memory resident kB (what a memory bomb grows; libraries are not)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        if line.startswith(("RssAnon:", "RssShmem:")):
            total += int(line.split()[1])
    return total


def _disk_usage(roots: Sequence[Path], pids: Sequence[int]) -> tuple[int, int]:
    """Bytes and entries under ``roots`` (links not followed) plus the private /tmp's use."""
    used, files = 0, 0
    stack = [str(root) for root in roots]
    while stack and files <= MAX_FILES:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    files += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    used += info.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    for pid in pids[:1]:
        try:
            tmp = os.statvfs(f"/proc/{pid}/root/tmp")
            used += (tmp.f_blocks - tmp.f_bfree) * tmp.f_frsize
        except OSError:
            pass
    return used, files


def _sweep(uid: int, seconds: float = SWEEP_SECONDS) -> bool:
    """SIGKILL every process of ``uid`` until none is left; False if some outlive ``seconds``."""
    give_up = time.monotonic() + seconds
    while True:
        pids = _processes_of(uid)
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        if time.monotonic() >= give_up:
            return not _processes_of(uid)
        time.sleep(0.01)
