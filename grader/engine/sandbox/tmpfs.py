"""Size- and inode-capped file systems mounted on the host for a submission's sandbox.

* **The submission's own folders** (``cell_area``): home and workspace, runtime, toolkit
  and the sandbox's passwd files live on one tmpfs per submission, capped at the disk
  limit in bytes and at ``WORK_FILES`` entries, when the engine is root and confines
  (bubblewrap, unshare). The kernel refuses the byte or file past the limit, however
  fast the student writes; the watcher reads the use in one ``statvfs`` and reports a
  full area as a disk-limit kill. The mount's root is the tmpfs's own, so the sandbox's
  mountinfo names none of the engine's folders for them. Unmounting at the end drops
  every file at once, whatever depth or mode the student left. The pages are RAM (or
  swap): at most ``disk_mb`` per running submission.
* **The sandbox's ``/etc``** (``system_etc``): copies of the host's ``/etc`` pieces on a
  tmpfs of the engine process's own, made once (again when the host's change) and bound
  in as ``/etc`` in one mount instead of one bind per piece (each bind costs a stage about
  0.1 ms, and bubblewrap's grow with their number). Its ``nsswitch.conf`` reads users
  and groups from the sandbox's own files only (``files_only``).
* **The sandbox's ``/dev``** (``system_dev``): the device nodes and links a stage gets, on
  a tmpfs of the engine process's own made once, bound in as ``/dev`` in one mount (by
  both kinds: the unshare cell's pid 1 used to build one per stage, six mounts).
* **/tmp and /dev/shm of a bubblewrap cell** (``capped``): bubblewrap's ``--tmpfs`` takes
  ``--size`` but no inode cap, and every empty file in a tmpfs costs kernel memory. When
  the engine is root it mounts both tmpfs itself with ``size`` and ``nr_inodes``, binds
  them in, and unmounts them when the stage or student process ends, on errors too (off
  the stage's path, ``behind``; the folders they are mounted on serve the next stage).
  The unshare sandbox's pid 1 passes ``nr_inodes`` itself.

Unmounts are lazy: nothing can hold a mount open once the stage's processes are gone.

The mounts live under ``BASE``, never in a submission's folder (where a mount left by an
engine killed mid-stage would make the folder impossible to remove): each engine process
has a folder there, named after a lock file it holds for its whole life; the first stage
an engine process runs unmounts and removes the folders whose lock nobody holds.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

from grader.engine.sandbox import behind
from grader.engine.sandbox.layout import (
    DEVICES,
    SHM_FILES,
    TMP_FILES,
    WORK_FILES,
    Cell,
    SandboxKind,
    area_fits,
    etc_pieces,
    shm_bytes,
    tmp_bytes,
    work_bytes,
)
from grader.engine.spec import Limits
from grader.errors import SandboxError

log = logging.getLogger(__name__)

BASE = Path("/run/grader-tmpfs")
MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def capped(cell: Cell) -> Iterator[Cell]:
    """``cell`` with ``tmp`` set to fresh capped tmpfs mounts while the block runs (the cell
    unchanged where it makes its own: not bubblewrap, or not root)."""
    if cell.kind in ("bubblewrap", "unshare") and cell.uid is not None:
        cell = replace(cell, system_etc=system_etc(cell.network))
    if cell.kind in ("bubblewrap", "unshare") and cell.uid is not None:
        cell = replace(cell, system_dev=system_dev())
    if cell.kind != "bubblewrap" or cell.uid is None:
        yield cell
        return
    folder = _mount_points()
    mounted: list[Path] = []
    ended = False
    try:
        try:
            for name, size, files in (
                ("tmp", tmp_bytes(cell.limits), TMP_FILES),
                ("shm", shm_bytes(cell.limits), SHM_FILES),
            ):
                mount_tmpfs(folder / name, size, files)
                mounted.append(folder / name)
        except OSError as exc:
            raise SandboxError(f"cannot make the stage's /tmp: {exc}") from exc
        yield replace(cell, tmp=folder)
        ended = True
    finally:
        # off the stage's path (0.2 ms): nothing of the stage is left to use them
        behind.later(functools.partial(_take_down, folder, mounted, reuse=ended))


def _take_down(folder: Path, mounted: list[Path], *, reuse: bool) -> None:
    """Unmount a stage's ``/tmp`` and ``/dev/shm``, and keep their folder for the next
    stage (``reuse``, all unmounted) or remove it."""
    unmounted = [unmount(target) for target in mounted]
    if reuse and all(unmounted):
        _give_back(folder)
    else:
        for target in (folder / "tmp", folder / "shm", folder):
            with suppress(OSError):  # still mounted: logged by unmount
                target.rmdir()


# Folders (each with an empty ``tmp`` and ``shm``) on which this engine process mounts a
# stage's /tmp and /dev/shm, free for the next stage: the mounts are new every time, the
# folders are not (removing a folder just unmounted can wait milliseconds on a busy host)
_MOUNT_POINTS: list[Path] = []
_MOUNT_POINTS_KEPT = 64
_MOUNT_POINTS_LOCK = threading.Lock()


def _mount_points() -> Path:
    """A folder of this engine's with empty ``tmp`` and ``shm`` folders, nothing mounted."""
    with _MOUNT_POINTS_LOCK:
        if _MOUNT_POINTS:
            return _MOUNT_POINTS.pop()
    try:
        folder = Path(tempfile.mkdtemp(prefix="stage-", dir=engine_folder()))
        for name in ("tmp", "shm"):
            (folder / name).mkdir()
    except OSError as exc:
        raise SandboxError(f"cannot make the stage's /tmp: {exc}") from exc
    return folder


def _give_back(folder: Path) -> None:
    with _MOUNT_POINTS_LOCK:
        if len(_MOUNT_POINTS) < _MOUNT_POINTS_KEPT:
            _MOUNT_POINTS.append(folder)
            return
    for target in (folder / "tmp", folder / "shm", folder):
        with suppress(OSError):
            target.rmdir()


@contextmanager
def cell_area(
    work_dir: Path, kind: SandboxKind, uid: int | None, limits: Limits
) -> Iterator[tuple[Path, bool]]:
    """The folder for a submission's own folders while the block runs, and whether it is
    a capped tmpfs: a fresh one (root engine, bubblewrap or unshare, a ``disk_mb`` memory
    can hold: ``area_fits``), else ``work_dir``."""
    if kind == "rlimits" or uid is None or not area_fits(limits):
        yield work_dir, False
        return
    try:
        area = Path(tempfile.mkdtemp(prefix="cell-", dir=engine_folder()))
    except OSError as exc:
        raise SandboxError(f"cannot make the submission's folders: {exc}") from exc
    try:
        try:
            mount_tmpfs(area, work_bytes(limits), WORK_FILES, mode=0o700)
        except OSError as exc:
            raise SandboxError(f"cannot make the submission's folders: {exc}") from exc
        try:
            yield area, True
        finally:
            unmount(area)
    finally:
        with suppress(OSError):  # still mounted: logged by unmount
            area.rmdir()


ETC = Path("/etc")  # the host's
ETC_BYTES, ETC_ENTRIES = 64 * 1024 * 1024, 65536  # caps of the copies' tmpfs (a few MB)
ETC_RECHECK_SECONDS = 5.0  # how often the host's pieces are compared with the copy
_ETC: dict[bool, tuple[tuple[tuple[int, int], ...], Path]] = {}
_ETC_CHECKED: dict[bool, float] = {}
_ETC_MAKING = threading.Lock()


def system_etc(network: bool) -> Path:
    """A folder of copies of the host's ``/etc`` pieces (``layout.etc_pieces``), with empty
    ``passwd`` and ``group`` files for the cell's own to be bound over, on a tmpfs of its
    own (so the sandbox's mountinfo names no host folder for it). Made once per engine
    process and network setting; made anew when a piece changes on the host, noticed
    within ``ETC_RECHECK_SECONDS`` (the old copy stays mounted for stages that are
    starting with it, until the engine ends)."""
    with _ETC_MAKING:
        made = _ETC.get(network)
        now = time.monotonic()
        if made is not None and now < _ETC_CHECKED.get(network, 0) + ETC_RECHECK_SECONDS:
            return made[1]
        names = etc_pieces(network, ETC)
        stamp = tuple(_stamp(ETC / name) for name in names)
        _ETC_CHECKED[network] = now
        if made is not None and made[0] == stamp:
            return made[1]
        try:
            folder = Path(tempfile.mkdtemp(prefix="etc-", dir=engine_folder()))
            mount_tmpfs(folder, ETC_BYTES, ETC_ENTRIES, mode=0o755)
        except OSError as exc:
            raise SandboxError(f"cannot make the sandbox's /etc: {exc}") from exc
        try:
            for name in names:
                _copy(ETC / name, folder / name)
            if "nsswitch.conf" in names:
                nsswitch = folder / "nsswitch.conf"
                text = files_only((ETC / "nsswitch.conf").read_text(errors="replace"))
                nsswitch.unlink()
                nsswitch.write_text(text)
                nsswitch.chmod(0o644)
            for name in ("passwd", "group"):
                (folder / name).touch(0o644)
        except OSError as exc:
            unmount(folder)
            raise SandboxError(f"cannot copy /etc/{name} for the sandbox: {exc}") from exc
        _ETC[network] = (stamp, folder)
        return folder


DEV_ENTRIES = 32  # inodes of the prepared /dev's tmpfs (a dozen are used)
DEV_MODE = 0o666  # every device node: anyone reads and writes (as bubblewrap's --dev)


def system_dev() -> Path:
    """A ``/dev`` for the sandboxes to bind in one mount instead of building one per
    stage (bubblewrap's ``--dev``: a tmpfs, a bind per device and a ``devpts``, about
    0.7 ms a stage; the unshare cell's pid 1: a tmpfs and a bind per device):
    ``layout.DEVICES`` as device nodes, the ``fd``, ``stdin``, ``stdout`` and ``stderr``
    links and an empty ``shm`` for the stage's own ``/dev/shm`` (no terminals). On a tmpfs
    of the engine process's own, made once, the only one here that allows device nodes
    (read-only to the stages: root's, 0755)."""
    with _DEV_MAKING:
        return _make_system_dev()


_DEV_MAKING = threading.Lock()


@functools.cache
def _make_system_dev() -> Path:
    try:
        folder = Path(tempfile.mkdtemp(prefix="dev-", dir=engine_folder()))
        mount_tmpfs(folder, 64 * 1024, DEV_ENTRIES, mode=0o755, devices=True)
    except OSError as exc:
        raise SandboxError(f"cannot make the sandbox's /dev: {exc}") from exc
    try:
        for name in DEVICES:
            node = folder / name
            os.mknod(node, stat.S_IFCHR | DEV_MODE, Path("/dev", name).stat().st_rdev)
            node.chmod(DEV_MODE)  # past the umask
        (folder / "fd").symlink_to("/proc/self/fd")
        for number, name in enumerate(("stdin", "stdout", "stderr")):
            (folder / name).symlink_to(f"/proc/self/fd/{number}")
        (folder / "shm").mkdir(mode=0o755)
    except OSError as exc:
        unmount(folder)
        raise SandboxError(f"cannot make the sandbox's /dev: {exc}") from exc
    return folder


USER_DATABASES = ("passwd", "group", "shadow", "gshadow", "initgroups")


def files_only(nsswitch: str) -> str:
    """``nsswitch`` (an ``nsswitch.conf``) with the user and group databases read from
    the sandbox's own files only. A host module (systemd's, sss, ldap) has nothing to
    reach inside, yet loading it costs every lookup: ``setpriv`` looks the stage's uid up
    by name first, which cost each bubblewrap stage about 0.8 ms with ``files systemd``."""
    lines = []
    for line in nsswitch.splitlines():
        name, colon, _ = line.partition(":")
        if colon and name.strip() in USER_DATABASES:
            line = f"{name.strip()}: files"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _stamp(path: Path) -> tuple[int, int]:
    try:
        info = path.lstat()
    except OSError:
        return (0, 0)
    return (info.st_ino, info.st_mtime_ns)


def _copy(source: Path, target: Path) -> None:
    """``source`` as it is: a link stays a link, a folder is copied with its links."""
    if source.is_symlink():
        target.symlink_to(source.readlink())
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)


def engine_folder() -> Path:
    """This engine process's folder under ``BASE`` (after sweeping dead engines' folders);
    its name also names the engine's cgroups (``cgroups``). Made once per process, however
    many slots ask for it at the same moment."""
    with _MAKING:
        return _make_engine_folder()


_MAKING = threading.Lock()


@functools.cache
def _make_engine_folder() -> Path:
    BASE.mkdir(mode=0o700, exist_ok=True)
    sweep()
    fd, name = tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=".lock", dir=BASE)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process ends (never closed)
    lock = Path(name)
    folder = lock.with_suffix("")
    folder.mkdir(mode=0o700)
    return folder


def sweep() -> None:
    """Unmount and remove the folders of engine processes that ended (their lock is free)."""
    for lock in BASE.glob("*.lock"):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live engine's
            folder = lock.with_suffix("")
            try:
                stages = list(folder.iterdir()) if folder.is_dir() else []
            except OSError:  # another engine process swept it first
                continue
            for stage in stages:  # a stage's /tmp and /dev/shm, or a submission's area
                if not stage.is_dir():  # a cgroup join marker (cgroups.Group)
                    with suppress(OSError):
                        stage.unlink()
                    continue
                if stage.is_mount():
                    unmount(stage)
                for target in (stage / "tmp", stage / "shm"):
                    if target.is_mount():
                        unmount(target)
                    with suppress(OSError):
                        target.rmdir()
                with suppress(OSError):
                    stage.rmdir()
            with suppress(OSError):
                folder.rmdir()
                lock.unlink()
        finally:
            os.close(fd)


def is_live(name: str) -> bool:
    """Whether the engine process named ``name`` (its folder under ``BASE``) still runs."""
    try:
        fd = os.open(BASE / f"{name}.lock", os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # unknown: never sweep what may be a live engine's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the lock if we took it
    return False


def mount_tmpfs(
    target: Path, size: int, files: int, *, mode: int = 0o1777, devices: bool = False
) -> None:
    """A tmpfs on ``target`` capped at ``size`` bytes and ``files`` inodes; no set-uid
    programs, and no device nodes unless ``devices``."""
    options = f"mode={mode:o},size={size},nr_inodes={files}".encode()
    flags = MS_NOSUID | (0 if devices else MS_NODEV)
    if _libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", flags, options) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"cannot mount a tmpfs on {target}: {os.strerror(error)}")


def unmount(target: Path) -> bool:
    """Detach the mount on ``target`` (lazily); whether it was (a failure is logged)."""
    if _libc.umount2(os.fsencode(target), MNT_DETACH) != 0:
        error = ctypes.get_errno()
        log.warning("cannot unmount the sandbox's tmpfs %s: %s", target, os.strerror(error))
        return False
    return True
