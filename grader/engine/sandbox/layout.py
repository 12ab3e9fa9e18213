"""Where things are inside a sandbox and the command lines that build one (pure).

``Cell`` is one submission's confinement as plain values; ``stage_argv`` renders it for
bubblewrap or for bare rlimits, and ``plan`` lays out the mounts both bubblewrap and the
unshare cell (``spawn``, direct system calls) build. Nothing here starts a process.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Literal, get_args

from grader.engine.spec import Limits

SandboxKind = Literal["bubblewrap", "unshare", "rlimits"]
KINDS: tuple[SandboxKind, ...] = ("bubblewrap", "unshare", "rlimits")
Role = Literal["harness", "student"]
"""Who a cell is for: the instructor's side (tests, evaluation: sees every file, writes the
report, may ask the broker for student processes) or the student's (their build and their
programs: no private instructor files, no report paths, no broker)."""
ROLES: tuple[Role, ...] = get_args(Role)

INNER_UID = 1000  # the uid a stage sees when the engine is not root (user namespace)
MB = 1024 * 1024
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SHM_MB = 64  # /dev/shm (POSIX semaphores for multiprocessing), a tmpfs of its own
# Files (inodes) each private tmpfs may hold: every one costs unswappable kernel memory
# that no memory limit counts (a million empty files is about a GB)
TMP_FILES, SHM_FILES = 16_384, 1_024
# Entries the submission's own folders (home, workspace, runtime) may hold: more is a
# disk-limit kill (the kernel's inode cap where they are a tmpfs, ``tmpfs.cell_area``)
WORK_FILES = 100_000
# Paths inside the sandbox, private tmpfs mounts (S108 is about shared host /tmp: not these)
TMP, SHM = "/tmp", "/dev/shm"  # noqa: S108
PRIVATE_TMPFS = (TMP, SHM)  # counted with the workspace against disk_mb

HOME = "/home/user"
WORKSPACE = f"{HOME}/workspace"
TOOLKIT = "/sphere-engine/bin"
LIB = "/sphere-engine/lib"  # grader_harness.py (on PYTHONPATH; host: toolkit/lib)
BROKER = "/sphere-engine/broker"  # the broker's socket, harness cells only
ENVIRONMENT = "/sphere-engine/env"  # the project's own Python environment, when it has one
HARNESS_MODULE = "grader_harness.py"
BROKER_SOCKET = "socket"
EMPTY_FILE = "/dev/null"  # what a student cell finds at a private read-only file
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
class Cell:
    """One submission's confinement: its host folders, what it may read, limits, identity.

    ``home``, ``runtime``, ``streams`` and ``toolkit`` are host folders; ``read_only`` are
    workspace paths pinned read-only, of which ``private`` are hidden from the student
    role; ``readable`` are host paths shown read-only at the same place. ``uid`` is the
    cell's own uid (``None``: the engine is not root); ``broker`` the host folder of the
    broker's socket (harness role). ``tmp``: a host folder whose ``tmp`` and ``shm`` are
    size- and inode-capped tmpfs mounts made for this stage (``tmpfs.capped``), bound in
    as ``/tmp`` and ``/dev/shm`` (``None``: the sandbox makes its own). ``environment``:
    the project's built Python environment (``engine/environments.py``), shown read-only
    and first on ``PATH`` after the toolkit (``None``: the engine's own Python).
    ``capped``: ``home``, ``runtime``, ``toolkit`` and ``etc`` are on one size- and
    inode-capped tmpfs of the submission's own (``tmpfs.cell_area``), whose use is read
    in one call and which the kernel stops at the disk limit. ``system_etc``: a host
    folder holding copies of the host's ``/etc`` pieces (``tmpfs.system_etc``), bound in
    as ``/etc`` in one mount (``None``: each piece is bound on its own). ``system_dev``:
    a host folder laid out as the sandbox's ``/dev`` (``tmpfs.system_dev``), bound in as
    ``/dev`` in one mount (``None``: the sandbox builds its own).
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
    role: Role = "harness"
    private: tuple[str, ...] = ()
    broker: Path | None = None
    tmp: Path | None = None
    environment: Path | None = None
    capped: bool = False
    system_etc: Path | None = None
    system_dev: Path | None = None

    @property
    def workspace(self) -> Path:
        return self.home / "workspace"

    @property
    def lib(self) -> Path:
        return self.toolkit / "lib"

    def inside(
        self,
        place: Literal[
            "home", "workspace", "runtime", "streams", "toolkit", "lib", "broker", "environment"
        ],
    ) -> str:
        """Where ``place`` is as the stage sees it (host paths when nothing is isolated)."""
        if self.kind == "rlimits":
            return str(getattr(self, place))
        return {
            "home": HOME,
            "workspace": WORKSPACE,
            "runtime": RUNTIME,
            "streams": STREAMS,
            "toolkit": TOOLKIT,
            "lib": LIB,
            "broker": BROKER,
            "environment": ENVIRONMENT,
        }[place]


@functools.cache
def which(name: str) -> str:
    """A system tool's absolute path (the same inside: system folders are shown as they are).
    Looked up once per process: each stage asks for two or three."""
    return shutil.which(name, path=SYSTEM_PATH) or name


def stage_argv(cell: Cell, command: str | Sequence[str], timeout: float) -> list[str]:
    """The host command line that runs ``command`` (a shell command line, or an argv)
    confined in ``cell``."""
    inner = launch(cell.uid, cell.limits, timeout, command, prlimit=not engine_sets_rlimits(cell))
    if cell.kind == "bubblewrap":
        return [
            *bwrap_options(cell),
            # signals the engine ignores (SIGHUP under nohup) are not the stage's to inherit
            *(default_signals() if ignoring_signals() else []),
            *inner,
        ]
    if cell.kind == "unshare":  # built by direct system calls (spawn.py) around this
        return command_argv(command)
    return inner


_STAND_IN = "/grader-stage-tmp"  # for a capped cell's per-stage folder (bwrap_options)


def bwrap_options(cell: Cell) -> list[str]:
    """bubblewrap and its options for ``cell``, up to the ``--`` before the command.

    Worked out once per cell (0.15-0.3 ms a stage: every mount, the folders before them,
    the readable paths checked on the host): from one stage of a submission to the next
    only the folder of its capped ``/tmp`` and ``/dev/shm`` changes (``tmpfs.capped``),
    so the cell is looked up with a stand-in there and the stage's folder put back.
    """
    if cell.tmp is None:
        return list(_bwrap_options(cell))
    real = str(cell.tmp)
    return [
        real + arg[len(_STAND_IN) :] if arg.startswith(f"{_STAND_IN}/") else arg
        for arg in _bwrap_options(replace(cell, tmp=Path(_STAND_IN)))
    ]


@functools.lru_cache(maxsize=64)
def _bwrap_options(cell: Cell) -> tuple[str, ...]:
    return (
        which("bwrap"),
        *namespace_flags(cell.uid, network=cell.network),
        *bwrap_mounts(cell_plan(cell)),
        "--chdir",
        WORKSPACE,
        "--remount-ro",
        "/",
        "--",  # watch.start passes what comes before through a file descriptor
    )


SETUP_FILES = 64  # bubblewrap's own set-up opens descriptors below this number


def engine_sets_rlimits(cell: Cell) -> bool:
    """Whether the engine sets the stage's rlimits itself (``prlimit(2)`` on bubblewrap's
    sandboxed process while it waits, ``watch.start``), sparing a ``prlimit`` program.

    Only under bubblewrap and when ``open_files`` leaves bubblewrap room to finish its
    set-up, which may still be running when the limits land (never an issue for the
    others: a larger limit than the program's set-up needs, or none at all).
    """
    return cell.kind == "bubblewrap" and cell.limits.open_files >= SETUP_FILES


def stage_rlimits(limits: Limits, timeout: float) -> list[tuple[int, int]]:
    """The stage's rlimits (resource, soft and hard value): address space, processes,
    open files, file size, CPU seconds, no core files."""
    return [
        (resource.RLIMIT_AS, address_space_bytes(limits)),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * MB),
        (resource.RLIMIT_CPU, math.ceil(timeout) + 1),
        (resource.RLIMIT_CORE, 0),
    ]


# Python ignores these itself, and Popen gives its children their defaults back
RESTORED_BY_POPEN = frozenset({signal.SIGPIPE, signal.SIGXFSZ})


# as plain numbers, made once: each stage asks, and making the enums cost 0.15 ms a time
_INHERITED = tuple(int(n) for n in signal.valid_signals() if n not in RESTORED_BY_POPEN)
# the C function signal.getsignal wraps: it answers with plain numbers, where the wrapper
# makes an enum of each answer (0.1 ms a stage over every signal)
_getsignal: Callable[[int], object] = importlib.import_module("_signal").getsignal


def ignoring_signals() -> bool:
    """Whether this engine ignores a signal a stage would inherit (SIGHUP under nohup or
    cron, SIGINT and SIGQUIT in a background job): only then does a stage pay for
    ``env --default-signal``, one more program."""
    for number in _INHERITED:
        try:
            if _getsignal(number) == signal.SIG_IGN:
                return True
        except (OSError, ValueError):
            continue
    return False


# what nohup, cron and a shell's background jobs ignore: signals whose handler changes
# nothing else (a caught SIGCHLD would stop the kernel reaping, a caught SIGTTOU would fail
# writes to the terminal); any other ignored one still costs the stages ``env``
_ADOPTED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
            signal.SIGUSR2)  # fmt: skip


def _ignore(number: int, frame: object) -> None:
    """A handler that does nothing: the engine ignores the signal as it did with SIG_IGN."""


def adopt_ignored_signals() -> None:
    """Where this engine ignores a signal a stage would inherit (``ignoring_signals``),
    catch it with a handler that does nothing instead: the engine still ignores it, and a
    stage starts with the default action (an exec resets caught signals, not ignored ones)
    without ``env --default-signal``. Only the main thread may; elsewhere the stages keep
    paying for ``env``."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in _ADOPTED:
        with suppress(OSError, ValueError):
            if signal.getsignal(number) == signal.SIG_IGN:
                signal.signal(number, _ignore)


@functools.cache
def default_signals() -> list[str]:
    """``env --default-signal`` (coreutils 8.31+): every signal back to its default action
    (``[]`` where env lacks the option)."""
    argv = [which("env"), "--default-signal"]
    try:
        done = subprocess.run([*argv, "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return argv if done.returncode == 0 else []


def stage_env(cell: Cell, extra: dict[str, str]) -> dict[str, str]:
    """The stage's whole environment, built from nothing (no host variable, no token).

    Python finds grader_harness on PYTHONPATH and never a user site in the home, where
    student code may have written (a usercustomize.py or .pth would run in the harness).
    """
    # Without a private /tmp, temporary files go to the home the disk watcher walks.
    tmp = f"{cell.home}/.tmp" if cell.kind == "rlimits" else TMP
    lib = cell.inside("lib")
    toolkit = cell.inside("toolkit")
    if cell.environment is not None:  # its python3 before the engine's and the system's
        toolkit += f":{cell.inside('environment')}/bin"
    env = {
        **base_env(cell.inside("home"), toolkit, tmp),
        "PYTHONPATH": lib,
        "PYTHONNOUSERSITE": "1",
        "GRADER_HARNESS_WORKER": f"{lib}/{HARNESS_MODULE}",
    }
    if cell.role == "harness":
        # every pytest the instructor's stages run gets the per-test time limit
        env["PYTEST_PLUGINS"] = HARNESS_MODULE.removesuffix(".py")
        if cell.broker is not None:
            env["GRADER_HARNESS_SOCKET"] = f"{cell.inside('broker')}/{BROKER_SOCKET}"
    return {**env, **extra}


def base_env(home: str, toolkit: str, tmp: str) -> dict[str, str]:
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


PRLIMIT_OPTIONS = {resource.RLIMIT_AS: "as", resource.RLIMIT_NPROC: "nproc",
                   resource.RLIMIT_NOFILE: "nofile", resource.RLIMIT_FSIZE: "fsize",
                   resource.RLIMIT_CPU: "cpu", resource.RLIMIT_CORE: "core"}  # fmt: skip


def launch(
    uid: int | None,
    limits: Limits,
    timeout: float,
    command: str | Sequence[str],
    *,
    prlimit: bool = True,
) -> list[str]:
    """setpriv (drop to ``uid``, no capabilities) -> prlimit (unless the engine sets the
    rlimits itself) -> ``/bin/sh -c command`` (or the argv ``command``)."""
    drop = []
    if uid is not None:
        drop = [
            which("setpriv"),
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    cap = [which("prlimit")]
    cap += [f"--{PRLIMIT_OPTIONS[key]}={value}" for key, value in stage_rlimits(limits, timeout)]
    return [*drop, *([*cap, "--"] if prlimit else []), *command_argv(command)]


def command_argv(command: str | Sequence[str]) -> list[str]:
    """``/bin/sh -c command`` for a shell command line, the argv itself otherwise."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


def address_space_bytes(limits: Limits) -> int:
    """RLIMIT_AS: only a backstop against one huge allocation; the watcher is the limit.

    Generous, because runtimes reserve far more address space than they touch (a JVM
    reserves a quarter of the machine's memory for its heap; Go and glibc arenas too).
    """
    return (4 * limits.memory_mb + 4096) * MB


def namespace_flags(uid: int | None, *, network: bool) -> list[str]:
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

    # dir: made 0755; hidden: an empty read-only folder laid over what is there; capped: a
    # bind of a fresh tmpfs the engine mounted on the host (empty, like a tmpfs); dev: a
    # /dev built in the sandbox, or the bind of ``source`` laid out as one (bubblewrap)
    op: Literal["ro", "rw", "symlink", "dir", "tmpfs", "proc", "dev", "hidden", "capped"]
    dest: str
    source: str = ""
    size: int = 0
    files: int = 0  # a tmpfs's inode cap (0: the kernel's default)


def system_mounts(
    *, network: bool = False, etc: Path | None = None, dev: Path | None = None
) -> list[Mount]:
    """Read-only system directories and the ``/etc`` pieces, as this host lays them out
    (``etc``: a folder of copies of them, ``tmpfs.system_etc``, bound as ``/etc``), then
    ``/proc`` and ``/dev`` (``dev``: a folder laid out as one, ``tmpfs.system_dev``)."""
    return list(_system_mounts(network, etc, dev))


def etc_pieces(network: bool, etc: Path = Path("/etc")) -> list[str]:
    """The names of the host's ``/etc`` pieces a stage sees (files, folders or links)."""
    names = ETC_FILES + (ETC_NETWORK if network else ())
    return [name for name in names if os.path.lexists(etc / name)]


@functools.lru_cache(maxsize=4)
def _system_mounts(network: bool, etc: Path | None, dev: Path | None) -> tuple[Mount, ...]:
    mounts = []
    for path in SYSTEM_DIRS:
        if Path(path).is_symlink():
            mounts.append(Mount("symlink", path, str(Path(path).readlink())))
        elif Path(path).is_dir():
            mounts.append(Mount("ro", path, path))
    if etc is not None:
        mounts.append(Mount("ro", "/etc", str(etc)))
    else:
        mounts += [Mount("ro", f"/etc/{name}", f"/etc/{name}") for name in etc_pieces(network)]
    return (*mounts, Mount("proc", "/proc"), Mount("dev", "/dev", str(dev or "")))


def cell_plan(cell: Cell) -> list[Mount]:
    """Every mount of ``cell``'s sandbox: the system's, then the submission's."""
    system = system_mounts(network=cell.network, etc=cell.system_etc, dev=cell.system_dev)
    return [*system, *cell_mounts(cell)]


def cell_mounts(cell: Cell) -> list[Mount]:
    """The submission's folders, the pinned read-only paths and the readable host paths.

    A student cell gets no runtime, streams, toolkit or broker, and an empty folder (or an
    empty file) over each private read-only path.
    """
    mounts = [
        Mount("ro", "/etc/passwd", str(cell.etc / "passwd")),
        Mount("ro", "/etc/group", str(cell.etc / "group")),
    ]
    if cell.tmp is not None:  # made on the host with an inode cap (bubblewrap has none)
        mounts += [
            Mount("capped", TMP, str(cell.tmp / "tmp")),
            Mount("capped", SHM, str(cell.tmp / "shm")),
        ]
    else:
        mounts += [
            Mount("tmpfs", TMP, size=tmp_bytes(cell.limits), files=TMP_FILES),
            Mount("tmpfs", SHM, size=shm_bytes(cell.limits), files=SHM_FILES),
        ]
    mounts += [Mount("ro", path, path) for path in readable_paths(cell.readable)]
    mounts.append(Mount("rw", HOME, str(cell.home)))
    for relative in cell.read_only:
        dest, host = f"{WORKSPACE}/{relative}", cell.workspace / relative
        if cell.role == "student" and relative in cell.private:
            folder = host.is_dir() and not host.is_symlink()
            mounts.append(Mount("hidden", dest) if folder else Mount("ro", dest, EMPTY_FILE))
        else:
            mounts.append(Mount("ro", dest, str(host)))
    mounts.append(Mount("ro", LIB, str(cell.lib)))
    if cell.environment is not None:
        mounts.append(Mount("ro", ENVIRONMENT, str(cell.environment)))
    if cell.role == "harness":
        mounts += [
            Mount("rw", RUNTIME, str(cell.runtime)),
            Mount("ro", STREAMS, str(cell.streams)),
            Mount("ro", TOOLKIT, str(cell.toolkit)),
        ]
        if cell.broker is not None:
            mounts.append(Mount("ro", BROKER, str(cell.broker)))
    return mounts


def work_bytes(limits: Limits) -> int:
    return limits.disk_mb * MB


AREA_SHARE = 8  # a submission's tmpfs area may hold at most this part of the machine's RAM


def area_fits(limits: Limits) -> bool:
    """Whether the submission's folders may live in memory (``tmpfs.cell_area``): its
    ``disk_mb`` is at most an ``AREA_SHARE``-th of the machine's memory (a project asking
    for gigabytes of disk gets the host disk, its use polled, not RAM)."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return False
    return work_bytes(limits) * AREA_SHARE <= memory


def tmp_bytes(limits: Limits) -> int:
    return limits.disk_mb * MB


def shm_bytes(limits: Limits) -> int:
    return min(limits.disk_mb, SHM_MB) * MB


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


def plan(mounts: Sequence[Mount]) -> list[Mount]:
    """The mounts in order, each preceded by the folders it needs (0755, top down).

    bwrap would create missing parents 0700, which the stage's uid could not walk through.
    A folder inside a bind comes from the host; one made earlier and then covered by a
    later mount is made again. (Worked out once per shape: every stage of a cell has the
    same, and only a capped tmpfs's source changes from one stage to the next.)
    """
    shape = _shape(tuple((mount.op, mount.dest) for mount in mounts))
    return [mounts[step] if isinstance(step, int) else Mount("dir", step) for step in shape]


@functools.lru_cache(maxsize=256)
def _shape(mounts: tuple[tuple[str, str], ...]) -> tuple[int | str, ...]:
    """``plan`` over (op, dest) pairs: a mount's index, or a folder to make."""
    steps: list[int | str] = []
    made: set[str] = set()
    binds: list[str] = []
    for index, (op, dest) in enumerate(mounts):
        parts = str(PurePosixPath(dest)).split("/")
        for depth in range(2, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in made or any(_under(folder, b) for b in binds):
                continue
            steps.append(folder)
            made.add(folder)
        steps.append(index)
        if op in ("ro", "rw"):
            binds.append(dest)
        if op in ("ro", "rw", "tmpfs", "dev", "proc", "hidden", "capped"):
            made = {folder for folder in made if not _under(folder, dest)}
        if op in ("tmpfs", "dev", "proc", "hidden", "capped"):
            made.add(dest)  # a fresh, empty folder now
    return tuple(steps)


def bwrap_mounts(mounts: Sequence[Mount]) -> list[str]:
    """bubblewrap options building ``mounts`` (with their parent folders) in order."""
    args: list[str] = []
    for m in plan(mounts):
        if m.op == "dir":
            args += ["--perms", "0755", "--dir", m.dest]
        elif m.op == "ro":
            args += ["--ro-bind", m.source, m.dest]
        elif m.op in ("rw", "capped"):
            args += ["--bind", m.source, m.dest]
        elif m.op == "symlink":
            args += ["--symlink", m.source, m.dest]
        elif m.op == "tmpfs":
            args += ["--perms", "1777", "--size", str(m.size), "--tmpfs", m.dest]
        elif m.op == "hidden":
            args += ["--perms", "0555", "--size", str(HIDDEN_BYTES), "--tmpfs", m.dest]
        elif m.op == "proc":
            args += ["--proc", m.dest]
        elif m.op == "dev" and m.source:  # a prepared one: one bind, devices allowed
            args += ["--dev-bind", m.source, m.dest]
        elif m.op == "dev":
            args += ["--dev", m.dest]
    return args


DEVICES = ("null", "zero", "full", "random", "urandom")
HIDDEN_BYTES = 4096  # the tmpfs laid over a private folder in a student cell
