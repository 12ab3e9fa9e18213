"""Kernel-enforced memory, process and CPU limits: every stage in a cgroup of its own.

Each stage of a bubblewrap or unshare cell, and each student process the broker starts,
runs in a fresh cgroup of every hierarchy the engine may use (cgroup v1: one per
controller; v2: one folder for all), made under the engine's *own* cgroup of that
hierarchy (read from ``/proc/self/cgroup``, never the hierarchy's root)::

    <own>/grader/<engine>/stage-<random>

``<engine>`` is this engine process's name under ``tmpfs.BASE`` (the folder whose lock it
holds for its whole life), so the first stage an engine process runs can tell a dead
engine's cgroups from a live one's: it kills what still runs in the dead ones and removes
them, as ``tmpfs.sweep`` does for mounts.

* **memory**: ``memory.limit_in_bytes`` (v1; ``memory.memsw.limit_in_bytes`` too where
  swap is accounted) or ``memory.max`` (v2, ``memory.swap.max`` 0 and ``memory.oom.group``)
  at ``stage_memory_bytes``: the stage's ``memory_mb``, plus what its private tmpfs and
  the submission's capped area may hold (their pages are charged to it, and an area's
  inodes at ``INODE_BYTES`` each), plus ``KERNEL_MB`` for kernel objects. Kernel
  memory (dentries and inodes of a file flood, page tables, socket buffers) is charged to
  the same counter on every kernel this supports (v2 always; v1 since kmem accounting
  became unconditional; the deprecated ``memory.kmem.limit_in_bytes`` is not written).
  Past it the kernel's OOM killer ends a process of the stage; the watcher then reports a
  memory-limit kill, like its own polling of resident memory (still the limit at exactly
  ``memory_mb``; the cgroup is the bound no burst between two polls can pass).
* **pids**: ``pids.max`` = the stage's ``processes`` plus ``PIDS_EXTRA`` for the sandbox's
  own processes. Unlike ``RLIMIT_NPROC`` (per uid), it counts exactly this stage.
* **cpu**: every stage has the same weight (``cpu.shares`` 1024 / ``cpu.weight`` 100), so
  under contention a stage gets its share of the CPUs whatever number of threads it
  runs; the engine's folder weighs as many ordinary processes as the machine has CPUs.
  No quota: on an idle machine a stage may use every CPU.

A stage joins its cgroups before anything of it runs. Under bubblewrap on v1, the
engine thread that starts it steps into them (``entered``), so bubblewrap is born inside;
on v2 the engine moves bubblewrap's sandboxed process in while it waits to run the
command (``join``). The unshare cell's pid 1 moves itself (``join_files``: v1's
``tasks``) before it builds anything; ``join_prefix`` is a tiny shell that writes its own
pid to each ``cgroup.procs``, then to a marker file, then execs the rest (tests). Every
process of the stage descends from one of these. A stage whose marker is missing never
ran its command, and is an engine fault.

Needs root (the cgroup files and ``tmpfs.BASE`` are root's); v2 needs the controllers
in the engine's cgroup's ``cgroup.controllers`` and a way to enable them below it (the
engine's cgroup must not hold processes itself, unless it is the root). Where a
controller is missing, stages run without it and ``grader doctor`` says which guarantee
is weaker (``describe``). The rlimits fallback gets none.
"""

from __future__ import annotations

import atexit
import errno
import functools
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from grader.engine.sandbox import behind
from grader.engine.sandbox.layout import MB, WORK_FILES, area_fits, shm_bytes, tmp_bytes, work_bytes
from grader.engine.spec import Limits
from grader.errors import SandboxError

log = logging.getLogger(__name__)

CONTROLLERS = ("memory", "pids", "cpu")
PARENT = "grader"  # the folder under the engine's own cgroup that holds every engine's
KERNEL_MB = 64  # kernel memory a stage may hold besides its own memory and tmpfs pages
INODE_BYTES = 1024  # a tmpfs file's inode and name in kernel memory, about
PIDS_EXTRA = 8  # the sandbox's own processes (bubblewrap's three, unshare's pid 1)
V1_SHARES, V2_WEIGHT = 1024, 100  # the kernel's default weight of a cgroup
KILL_SECONDS = 3.0  # how long a cgroup's processes may take to die before it is a fault
Version = Literal[1, 2]


@dataclass(frozen=True)
class Hierarchy:
    """One cgroup hierarchy: its version, the engine's own cgroup in it (a host folder)
    and the controllers of ``CONTROLLERS`` the engine uses there."""

    version: Version
    own: Path
    controllers: tuple[str, ...]


@dataclass(frozen=True)
class Support:
    """What this machine gives: hierarchies to use and, per missing controller, why."""

    hierarchies: tuple[Hierarchy, ...] = ()
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(c for h in self.hierarchies for c in h.controllers)


def find_hierarchies(proc_cgroup: str, mountinfo: str) -> Support:
    """Where the engine's own cgroups are (pure: the texts of /proc/self/cgroup and
    /proc/self/mountinfo; the folders are only checked to exist, be writable and, for v2,
    to offer the controllers)."""
    own_v1: dict[str, str] = {}
    own_v2: str | None = None
    for line in proc_cgroup.splitlines():
        number, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if number == "0" and not names:
            own_v2 = path
        for name in names.split(","):
            own_v1[name] = path
    mounts_v1: dict[str, tuple[str, str]] = {}  # controller -> (mount root, mount point)
    mount_v2: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        kind, options = fields[dash + 1], fields[dash + 3].split(",")
        root, point = fields[3], _unescape(fields[4])
        if kind == "cgroup":
            for name in CONTROLLERS:
                if name in options:
                    mounts_v1.setdefault(name, (root, point))
        elif kind == "cgroup2" and mount_v2 is None:
            mount_v2 = (root, point)
    missing: dict[str, str] = {}
    found: dict[tuple[Version, Path], list[str]] = {}
    for name in CONTROLLERS:
        where, why = _place(name, own_v1, mounts_v1, own_v2, mount_v2)
        if where is None:
            missing[name] = why
        else:
            found.setdefault(where, []).append(name)
    hierarchies = tuple(Hierarchy(v, own, tuple(names)) for (v, own), names in found.items())
    return Support(hierarchies, missing)


def _place(
    name: str,
    own_v1: dict[str, str],
    mounts_v1: dict[str, tuple[str, str]],
    own_v2: str | None,
    mount_v2: tuple[str, str] | None,
) -> tuple[tuple[Version, Path] | None, str]:
    if name in mounts_v1 and name in own_v1:
        own = _inside(*mounts_v1[name], own_v1[name])
        if own is None:
            return None, f"the engine's {name} cgroup is outside the mounted hierarchy"
        if not os.access(own, os.W_OK):
            return None, f"{own} is not writable"
        return (1, own), ""
    if mount_v2 is None or own_v2 is None:
        return None, f"no {name} controller is mounted (cgroup v1 or v2)"
    own = _inside(*mount_v2, own_v2)
    if own is None:
        return None, "the engine's cgroup is outside the mounted cgroup2 hierarchy"
    try:
        offered = (own / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return None, f"cannot read {own}/cgroup.controllers: {exc.strerror}"
    if name not in offered:
        return None, f"the {name} controller is not delegated to {own} (cgroup v2)"
    if not os.access(own, os.W_OK):
        return None, f"{own} is not writable"
    return (2, own), ""


def _inside(root: str, point: str, path: str) -> Path | None:
    """The host folder of cgroup ``path`` in a hierarchy whose ``root`` is mounted at
    ``point``; ``None`` if it is not under that root."""
    relative = os.path.relpath(path, root)
    if relative.startswith(".."):
        return None
    return Path(point) if relative == "." else Path(point) / relative


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def stage_memory_bytes(limits: Limits) -> int:
    """The memory cgroup's limit: the stage's memory, its tmpfs pages (``/tmp``,
    ``/dev/shm`` and the submission's capped area, with an inode's kernel memory for each
    entry the area may hold) and kernel objects."""
    tmpfs = tmp_bytes(limits) + shm_bytes(limits)
    if area_fits(limits):  # else the submission's folders are on the host disk
        tmpfs += work_bytes(limits) + WORK_FILES * INODE_BYTES
    return (limits.memory_mb + KERNEL_MB) * MB + tmpfs


def stage_pids(limits: Limits) -> int:
    return limits.processes + PIDS_EXTRA


class Group:
    """One stage's cgroups (a folder per hierarchy), made with its limits written."""

    def __init__(self, folders: Sequence[tuple[Hierarchy, Path]], marker: Path) -> None:
        self.folders = list(folders)
        self.marker = marker
        # found empty by ``kill``, which runs only once the stage's first process is
        # reaped: nothing is left that could join, so later calls need not read again
        self.emptied = False

    @classmethod
    def make(cls, parents: Sequence[tuple[Hierarchy, Path]], limits: Limits, marker: Path) -> Group:
        name = f"stage-{secrets.token_hex(6)}"
        group = cls([], marker)
        try:
            for hierarchy, parent in parents:
                folder = parent / name
                folder.mkdir()
                group.folders.append((hierarchy, folder))
                write_limits(hierarchy, folder, limits)
        except OSError as exc:
            group.remove()
            raise SandboxError(f"cannot make the stage's cgroup: {exc}") from exc
        return group

    def join_prefix(self) -> list[str]:
        """An argv prefix that moves itself into every cgroup, notes it, then execs the rest."""
        files = [str(folder / "cgroup.procs") for _, folder in self.folders]
        files.append(str(self.marker))
        return ["/bin/sh", "-c", _JOIN, "grader-join", str(len(files)), *files]

    def join(self, pid: int, *, born_inside: bool = False) -> None:
        """Move process ``pid`` into every cgroup (what it starts from then on is in them
        too), then note it (``joined``); ``born_inside``: it was started in them
        (``entered``), so it is only noted. A process that has ended is noted too: it
        waited to be let go after joining, so it ran nothing. Raises ``OSError``."""
        if not born_inside:
            try:
                for _, folder in self.folders:
                    (folder / "cgroup.procs").write_text(f"{pid}\n")
            except ProcessLookupError:
                pass
        self.marker.touch(0o600)

    def threads_may_enter(self) -> bool:
        """Whether a thread of the engine may step into the stage's cgroups (``entered``):
        only when every hierarchy is v1, where threads of one process may be apart (v2
        keeps a process's threads together)."""
        return bool(self.folders) and all(h.version == 1 for h, _ in self.folders)

    @contextmanager
    def entered(self) -> Iterator[None]:
        """This thread in the stage's cgroups while the block runs (``threads_may_enter``):
        a process it starts is born in them, so nothing has to move it (``join``). Then
        back in the engine's own cgroups, whatever the block raised.

        A thread moves itself by writing "0" to a v1 hierarchy's ``tasks``, which the
        kernel does without the global threadgroup lock that moving another process takes
        (``join_files``): that lock waits for an RCU grace period, 0.1 ms on an idle host
        but 5-15 ms while other stages' namespaces are being torn down (measured beside
        the unshare sandbox on this 2-core machine). The thread's own user memory stays
        charged to the engine (memory follows the process, not the thread). Raises
        ``SandboxError`` if it cannot get in (having gone back) or out."""
        inside: list[Hierarchy] = []
        try:
            try:
                for hierarchy, folder in self.folders:
                    _write_text(folder / "tasks", "0")
                    inside.append(hierarchy)
            except OSError as exc:
                raise SandboxError(f"cannot enter the stage's cgroup: {exc}") from exc
            yield
        finally:
            _leave(inside)

    def join_files(self) -> list[Path]:
        """What the unshare cell's pid 1 writes "0" to (itself) before anything else: each
        v1 hierarchy's ``tasks`` (v2: ``cgroup.procs``), and last the marker (created).

        pid 1 is a single-threaded fork, so moving its one thread moves all of it. In v1 a
        thread moving itself through ``tasks`` does so without the global threadgroup lock
        that a write to ``cgroup.procs`` (or of another pid) takes, whose taking waits for
        an RCU grace period: 0.3 ms on an idle host, 6 ms in a trace on a busy one."""
        own = [folder / ("tasks" if hierarchy.version == 1 else "cgroup.procs")
               for hierarchy, folder in self.folders]  # fmt: skip
        return [*own, self.marker]

    def joined(self) -> bool:
        """Whether the stage's first process joined every cgroup (and so ran its command)."""
        return self.marker.exists()

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the stage for its memory limit."""
        for hierarchy, folder in self.folders:
            if "memory" not in hierarchy.controllers:
                continue
            events = "memory.oom_control" if hierarchy.version == 1 else "memory.events"
            try:
                lines = (folder / events).read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                    return True
        return False

    def pids(self) -> list[int]:
        found: set[int] = set()
        for _, folder in self.folders:
            found.update(_procs(folder))
        return sorted(found)

    def anon_kb(self) -> int | None:
        """kB of anonymous memory charged to the stage (each page once, however many
        processes share it copy-on-write); ``None`` without a memory cgroup."""
        for hierarchy, folder in self.folders:
            if "memory" not in hierarchy.controllers:
                continue
            key = "rss" if hierarchy.version == 1 else "anon"
            try:
                lines = (folder / "memory.stat").read_text().splitlines()
            except OSError:
                return None
            for line in lines:
                name, _, value = line.partition(" ")
                if name == key and value.strip().isdigit():
                    return int(value) // 1024
            return None
        return None

    def kill(self, seconds: float = KILL_SECONDS) -> bool:
        """SIGKILL everything in the stage's cgroups; False if some outlive ``seconds``.
        Only once the stage's first process has ended (its watcher reaped it)."""
        if not self.emptied:
            self.emptied = all(_kill_all(folder, seconds) for _, folder in self.folders)
        return self.emptied

    def remove(self) -> None:
        """Kill what is left and remove the folders (a failure is logged; a later engine
        sweeps what stays)."""
        for _, folder in reversed(self.folders):
            if not self.emptied:
                _kill_all(folder, KILL_SECONDS)
            _rmdir(folder)
        self.folders = []
        with suppress(FileNotFoundError):
            self.marker.unlink()


def _leave(inside: Sequence[Hierarchy]) -> None:
    """This thread back in the engine's own cgroup of each hierarchy it had entered."""
    for hierarchy in inside:
        try:
            _write_text(hierarchy.own / "tasks", "0")
        except OSError as exc:  # never seen: root may always go back where it was
            raise SandboxError(f"cannot leave a stage's cgroup: {exc}") from exc


# n, then n files to write our pid to (cgroup.procs, and last the marker), then the argv
_JOIN = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); '
    'done; exec "$@"'
)


def write_limits(hierarchy: Hierarchy, folder: Path, limits: Limits) -> None:
    """Write ``limits`` into a stage's fresh cgroup ``folder``."""
    memory, pids = stage_memory_bytes(limits), stage_pids(limits)
    names = hierarchy.controllers
    if hierarchy.version == 1:
        if "memory" in names:
            _write(folder / "memory.limit_in_bytes", memory)
            if (folder / "memory.memsw.limit_in_bytes").exists():  # swap accounted
                _write(folder / "memory.memsw.limit_in_bytes", memory)
        if "pids" in names:
            _write(folder / "pids.max", pids)
        return
    if "memory" in names:
        _write(folder / "memory.max", memory)
        for name, value in (("memory.swap.max", 0), ("memory.oom.group", 1)):
            if (folder / name).exists():
                _write(folder / name, value)
    if "pids" in names:
        _write(folder / "pids.max", pids)


def prepare_engine(hierarchy: Hierarchy, engine: str) -> Path:
    """The engine's folder ``<own>/grader/<engine>`` in ``hierarchy`` (made, with its weight
    and, in v2, the controllers enabled down to it)."""
    parent = hierarchy.own / PARENT
    folder = parent / engine
    parent.mkdir(exist_ok=True)
    folder.mkdir(exist_ok=True)
    weight = os.cpu_count() or 1
    if hierarchy.version == 1:
        if "cpu" in hierarchy.controllers:
            for place in (parent, folder):
                _write(place / "cpu.shares", V1_SHARES * weight)
        return folder
    enable = " ".join(f"+{name}" for name in hierarchy.controllers)
    for place in (hierarchy.own, parent, folder):
        try:
            _write_text(place / "cgroup.subtree_control", enable)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise OSError(
                    exc.errno,
                    f"{place} holds processes, so it cannot hand its controllers down "
                    "(run the engine in a cgroup of its own whose parent delegates them)",
                ) from exc
            raise
    if "cpu" in hierarchy.controllers:
        for place in (parent, folder):
            _write(place / "cpu.weight", min(V2_WEIGHT * weight, 10_000))
    return folder


def _write(path: Path, value: int) -> None:
    _write_text(path, str(value))


def _write_text(path: Path, text: str) -> None:
    with path.open("w") as sink:  # one write: a cgroup file takes one value per write
        sink.write(text)


def _procs(folder: Path) -> list[int]:
    try:
        text = (folder / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split() if pid.isdigit()]


def _tries(seconds: float) -> Iterator[None]:
    """Try once, then again after 0.5 ms, doubling to 10 ms, until ``seconds`` have gone:
    a killed process usually leaves its cgroup within a millisecond of its death."""
    give_up = time.monotonic() + seconds
    pause = 0.0005
    while True:
        yield
        if time.monotonic() >= give_up:
            return
        time.sleep(pause)
        pause = min(2 * pause, 0.01)


def _kill_all(folder: Path, seconds: float) -> bool:
    for _ in _tries(seconds):
        pids = _procs(folder)
        if not pids:
            return True
        if (folder / "cgroup.kill").exists():
            with suppress(OSError):
                _write(folder / "cgroup.kill", 1)
        for pid in pids:
            if pid == os.getpid():  # a thread of the engine that could not leave (entered)
                continue
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return not _procs(folder)


def _rmdir(folder: Path) -> None:
    for _ in _tries(1.0):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.warning("cannot remove the cgroup %s: %s", folder, exc.strerror)
                return
    log.warning("cannot remove the cgroup %s: still busy", folder)


def sweep(hierarchy: Hierarchy, alive: Callable[[str], bool]) -> None:
    """Kill and remove the cgroups of engine processes that ended (``alive(name)`` False)."""
    parent = hierarchy.own / PARENT
    try:
        engines = [entry for entry in parent.iterdir() if entry.is_dir()]
    except OSError:
        return
    for engine in engines:
        if alive(engine.name):
            continue
        try:
            stages = [entry for entry in engine.iterdir() if entry.is_dir()]
        except OSError:  # another engine process swept it first
            continue
        for stage in stages:
            _kill_all(stage, KILL_SECONDS)
            _rmdir(stage)
        _rmdir(engine)


@dataclass(frozen=True)
class Ready:
    """The engine's folder in each usable hierarchy, and why the others are missing."""

    parents: tuple[tuple[Hierarchy, Path], ...]
    missing: dict[str, str]
    marker_folder: Path | None


def _ready() -> Ready:
    """``_prepare``'s answer, worked out once: an engine's slots start their first stages
    at the same moment, and two sweeps or two engine folders would race each other."""
    with _PREPARING:
        return _prepare()


_PREPARING = threading.Lock()


@functools.cache
def _prepare() -> Ready:
    from grader.engine.sandbox import tmpfs  # the engine's name and its liveness

    if os.geteuid() != 0:
        why = "the engine is not root"
        return Ready((), dict.fromkeys(CONTROLLERS, why), None)
    try:
        support = find_hierarchies(
            Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
        )
        engine_folder = tmpfs.engine_folder()
    except OSError as exc:
        return Ready((), dict.fromkeys(CONTROLLERS, f"cannot read cgroups: {exc}"), None)
    missing = dict(support.missing)
    parents = []
    for hierarchy in support.hierarchies:
        sweep(hierarchy, tmpfs.is_live)
        try:
            parents.append((hierarchy, prepare_engine(hierarchy, engine_folder.name)))
        except OSError as exc:
            for name in hierarchy.controllers:
                missing[name] = f"cannot use {hierarchy.own}: {exc.strerror or exc}"
    return Ready(tuple(parents), missing, engine_folder)


def threads_may_enter() -> bool:
    """Whether the stages' cgroups here will let a thread of the engine step in
    (``Group.threads_may_enter``), known before one is made."""
    ready = _ready()
    return bool(ready.parents) and all(h.version == 1 for h, _ in ready.parents)


def missing() -> dict[str, str]:
    """Controllers stages run without here, and why (empty: all of them hold)."""
    return dict(_ready().missing)


_switched_off: list[bool] = []  # ``switched_off`` blocks (bench/cgroup_cost.py)


@contextmanager
def switched_off() -> Iterator[None]:
    """Stages started in the block get no cgroups, as on a machine without them (to
    measure what they cost: ``bench/cgroup_cost.py``)."""
    _switched_off.append(True)
    try:
        yield
    finally:
        _switched_off.pop()


@contextmanager
def stage_group(kind: str, limits: Limits) -> Iterator[Group | None]:
    """The stage's cgroups while the block runs (``None``: the rlimits fallback, or no
    controller is usable here); whatever is left in them is killed when it ends, and
    they are removed (``_Ahead``: made ahead and removed by a thread of their own)."""
    ready = _ready()
    usable = ready.parents and ready.marker_folder is not None and not _switched_off
    if kind == "rlimits" or not usable:
        yield None
        return
    group = _AHEAD.take(ready, limits) or _fresh(ready, limits)
    try:
        yield group
    finally:
        if group.kill():
            _AHEAD.discard(group)
        else:
            group.remove()


def _fresh(ready: Ready, limits: Limits) -> Group:
    assert ready.marker_folder is not None
    marker = ready.marker_folder / f"joined-{secrets.token_hex(6)}"
    return Group.make(ready.parents, limits, marker)


AHEAD_LIMITS = 4  # the sets of limits (projects) whose stage cgroups are made ahead


class _Ahead:
    """A stage's cgroups made ahead, and emptied ones removed, off the stages' path
    (``behind``).

    Making a stage's folders (a memory cgroup is the dearest: per-CPU counters) and
    removing them took 0.3-0.5 ms of each stage's start and end. ``take`` hands out a
    group made for the same limits, if one is ready; ``refill`` (once the stage runs, as
    for network namespaces) has the next made; ``discard`` has an emptied group removed.
    One group is kept ready per set of limits, for the ``AHEAD_LIMITS`` sets used last. A
    forked engine forgets its parent's (``_forget``): they are its parent's to use and
    remove. The groups still ready when the engine ends are removed then; what a killed
    engine leaves is swept by the next, like every dead engine's cgroups.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: dict[Limits, Group] = {}
        self.making: set[Limits] = set()
        self.wanted: dict[Limits, Ready] = {}  # oldest first
        self.broken = False

    def take(self, ready: Ready, limits: Limits) -> Group | None:
        with self.lock:
            group = self.ready.pop(limits, None)
            if self.broken:
                return group
            self.wanted.pop(limits, None)
            self.wanted[limits] = ready
            for old in list(self.wanted)[:-AHEAD_LIMITS]:
                del self.wanted[old]
                if old in self.ready:
                    behind.later(self.ready.pop(old).remove)
            return group

    def refill(self) -> None:
        """Have what was taken made again (a stage has started, and its thread waits)."""
        with self.lock:
            for limits, ready in self.wanted.items():
                if limits not in self.ready and limits not in self.making:
                    self.making.add(limits)
                    behind.later(functools.partial(self._make, ready, limits))

    def discard(self, group: Group) -> None:
        """Have emptied ``group`` removed."""
        behind.later(group.remove)

    def _make(self, ready: Ready, limits: Limits) -> None:
        try:
            group = _fresh(ready, limits)
        except SandboxError as exc:
            log.info("no stage cgroups made ahead (each stage makes its own): %s", exc)
            with self.lock:
                self.broken, self.wanted = True, {}
                self.making.discard(limits)
            return
        with self.lock:
            self.making.discard(limits)
            if limits in self.wanted and limits not in self.ready:
                self.ready[limits] = group
                return
        group.remove()

    def close(self) -> None:
        """Remove the groups made ahead (the engine process ends)."""
        with self.lock:
            groups, self.ready = list(self.ready.values()), {}
            self.wanted, self.broken = {}, True
        for group in groups:
            group.remove()


_AHEAD = _Ahead()


def refill_ahead() -> None:
    """Have the stage cgroups taken made again (``_Ahead``): called once a stage has
    started and its starting thread only waits."""
    _AHEAD.refill()


def _forget() -> None:
    """In a forked child: the groups made ahead are its parent's."""
    global _AHEAD  # a new one: the old lock may be held by a thread the fork left behind
    _AHEAD = _Ahead()


os.register_at_fork(after_in_child=_forget)
atexit.register(lambda: _AHEAD.close())


def describe(kind: str, ready: Ready | None = None) -> tuple[bool, str]:
    """Whether the kernel enforces the stage's memory, processes and CPU share here
    (``ready``: what this engine process found, by default)."""
    if kind == "rlimits":
        return False, (
            "NO CGROUPS without namespaces: memory is only polled, processes are counted "
            "per uid (RLIMIT_NPROC) and CPU is shared per thread; install bubblewrap"
        )
    ready = ready or _ready()
    held = [(h, name) for h, _ in ready.parents for name in h.controllers]
    have = {name for _, name in held}
    versions = sorted({h.version for h, _ in held})
    weaker = []
    if "memory" not in have:
        weaker.append(
            "memory is only polled (a burst between two polls, and kernel memory such as a "
            "file flood's inodes, are not bounded)"
        )
    if "pids" not in have:
        weaker.append("processes are only capped per uid (RLIMIT_NPROC)")
    if "cpu" not in have:
        weaker.append("CPU is shared per thread: a stage with many threads slows its neighbours")
    said = {
        "memory": "memory with kernel memory",
        "pids": "processes",
        "cpu": "an equal CPU share",
    }
    holds = ", ".join(said[name] for name in CONTROLLERS if name in have)
    if not weaker:
        return True, (
            f"cgroup v{'/'.join(map(str, versions))} per stage: {holds} enforced by the kernel"
        )
    why = "; ".join(f"{name}: {ready.missing[name]}" for name in CONTROLLERS if name not in have)
    prefix = f"cgroup per stage for {holds} only; " if holds else "NO CGROUPS: "
    return False, f"{prefix}{'; '.join(weaker)} ({why})"
