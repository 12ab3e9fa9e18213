"""Folders a submission wrote: removed, measured, owned and copied without trusting them.

Student code can leave any tree behind: thousands of folders deep (the full path far
past PATH_MAX), names with newlines or bytes that are not UTF-8, folders it made
unreadable or unwritable, links to anywhere, as many entries as the limits allow. Every
walk here is iterative (no Python recursion), works from open folder descriptors
(``dir_fd``, never a long path), never follows a link (``O_NOFOLLOW``), never descends
into another filesystem, and keeps at most ``OPEN_FOLDERS`` descriptors open however
deep the tree: an ancestor whose descriptor was closed is reopened through ``..`` and
must be the very folder it was (device and inode), or the walk stops with ``TreeError``.

A folder the engine may not read, search or (when removing) change because of its mode
gets the owner's bits it needs first: without root, the engine owns what its sandbox
wrote. Removal works on any mode and any owner when the engine is root.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from grader.errors import TreeError

OPEN_FOLDERS = 64  # descriptors one walk keeps open, whatever the depth
RELISTS = 3  # a folder found non-empty after its entries were removed is read again
COPY_CHUNK = 1024 * 1024

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = 0o500  # owner read and search: enough to list a folder and reach its entries
_CHANGE = 0o700  # and write: enough to remove its entries


class Stop(Protocol):
    """Asked between entries: a long removal ends early (and resumes on the next call)."""

    def is_set(self) -> bool: ...


@dataclass
class _Folder:
    name: str  # in its parent
    ident: tuple[int, int]  # (st_dev, st_ino): recognised when reopened through ".."
    fd: int | None  # None once closed to bound the open descriptors
    todo: list[str] | None = None  # sub-folders still to visit; None: not read yet
    readings: int = 0  # times it was read again (found not empty when removed)


class _Descent:
    """The open path from a root folder down to the current one, short of descriptors.

    ``needs``: the owner mode bits a folder gets before it is read (``_READ``) or
    emptied (``_CHANGE``) when its mode lacks them; 0 changes nothing.
    """

    def __init__(self, root: int, needs: int) -> None:
        info = os.fstat(root)
        self.device, self.needs = info.st_dev, needs
        # Root reads and searches any mode as it is; removing always needs write.
        self.fix = needs == _CHANGE or (needs != 0 and os.geteuid() != 0)
        self.stack = [_Folder("", (info.st_dev, info.st_ino), os.dup(root))]

    @property
    def fd(self) -> int:
        """The current folder (always open)."""
        fd = self.stack[-1].fd
        assert fd is not None
        return fd

    @property
    def top(self) -> _Folder:
        return self.stack[-1]

    @property
    def depth(self) -> int:
        """0 at the root."""
        return len(self.stack) - 1

    def relative(self, name: str) -> str:
        """``name`` in the current folder, as a path from the root (costs the depth)."""
        return "/".join([*(folder.name for folder in self.stack[1:]), name])

    def enter(self, name: str) -> bool:
        """Make sub-folder ``name`` current; False when it is gone, is no folder (a link
        included) or is on another filesystem."""
        fd = _open_folder(self.fd, name, self.needs if self.fix else 0)
        if fd is None:
            return False
        info = os.fstat(fd)
        if info.st_dev != self.device:
            os.close(fd)
            return False
        try:
            if self.fix and info.st_mode & self.needs != self.needs:
                os.fchmod(fd, stat.S_IMODE(info.st_mode) | self.needs)
        except OSError:
            os.close(fd)
            raise
        self.stack.append(_Folder(name, (info.st_dev, info.st_ino), fd))
        if len(self.stack) > OPEN_FOLDERS:
            far = self.stack[-OPEN_FOLDERS - 1]
            if far.fd is not None:
                os.close(far.fd)
                far.fd = None
        return True

    def leave(self) -> str:
        """Close the current folder and make its parent current; returns its name."""
        folder = self.stack.pop()
        assert folder.fd is not None and self.stack
        try:
            if self.top.fd is None:
                self.top.fd = self._reopen(folder.fd, self.top)
        finally:
            os.close(folder.fd)
        return folder.name

    def _reopen(self, child: int, parent: _Folder) -> int:
        fd = os.open("..", _FOLDER, dir_fd=child)
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != parent.ident:
            os.close(fd)
            raise TreeError(
                f"folder {shown(parent.name)} at depth {self.depth} moved while it was walked"
            )
        return fd

    def close(self) -> None:
        for folder in self.stack:
            if folder.fd is not None:
                os.close(folder.fd)
                folder.fd = None
        self.stack.clear()


def _open_folder(parent: int, name: str, needs: int) -> int | None:
    """Open a sub-folder without following a link; a mode that refuses us is widened."""
    try:
        return os.open(name, _FOLDER, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None  # a link (O_NOFOLLOW)
        if exc.errno != errno.EACCES or not needs:
            raise
    if not _chmod_folder(parent, name, needs):
        return None
    try:
        return os.open(name, _FOLDER, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _chmod_folder(parent: int, name: str, add: int, mode: int | None = None) -> bool:
    """Set a folder's mode (or add owner bits to it) without opening it for reading or
    following a link; False when it is no folder. An O_PATH descriptor needs no
    permission; fchmod refuses one, so the change goes through /proc."""
    return _chmod_entry(parent, name, add, mode, folders_only=True)


def _chmod_entry(
    parent: int, name: str, add: int, mode: int | None, *, folders_only: bool = False
) -> bool:
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except FileNotFoundError:
        return False
    try:
        info = os.fstat(fd)
        if stat.S_ISLNK(info.st_mode) or (folders_only and not stat.S_ISDIR(info.st_mode)):
            return False
        new = stat.S_IMODE(info.st_mode) | add if mode is None else mode
        Path(f"/proc/self/fd/{fd}").chmod(new)
        return True
    finally:
        os.close(fd)


def shown(name: str) -> str:
    """A name as text for a message: any bytes, newlines escaped, long names cut."""
    text = repr(os.fsencode(name).decode("utf-8", "backslashreplace"))
    return text if len(text) <= 80 else text[:77] + "..."


def _open_own(path: Path) -> int:
    """One of the engine's own folders (links on the way there are the engine's)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _unlink(parent: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=parent)


# --- removing ---------------------------------------------------------------------------


def remove_tree(path: Path, *, stop: Stop | None = None) -> bool:
    """Delete ``path``: a folder and everything under it, a file or a link; absent is fine.

    Returns False when ``stop`` ended it early (the next call removes the rest). Raises
    ``TreeError`` (an ``OSError``) saying what could not be removed and why.
    """
    try:
        anchor = _open_own(path.parent)
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise TreeError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    try:
        return _remove_in(anchor, path.name, stop)
    except TreeError:
        raise
    except OSError as exc:
        raise TreeError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(anchor)


def _remove_in(parent: int, name: str, stop: Stop | None = None) -> bool:
    """Remove entry ``name`` of folder ``parent``, whatever it is."""
    info = _lstat(parent, name)
    if info is None:
        return True
    if not stat.S_ISDIR(info.st_mode):
        _unlink(parent, name)
        return True
    walk = _Descent(parent, _CHANGE)
    try:
        if not walk.enter(name):
            _unlink(parent, name)  # a link or file by now; a mount point refuses
            return True
        while walk.depth:
            if stop is not None and stop.is_set():
                return False
            _remove_step(walk)
    finally:
        walk.close()
    return True


def _remove_step(walk: _Descent) -> None:
    """Unlink the current folder's files, enter its next sub-folder, or remove it."""
    folder = walk.top
    if folder.todo is None:
        folder.todo = _remove_files(walk)
        return
    if folder.todo:
        sub = folder.todo.pop()
        if not walk.enter(sub):
            _unlink(walk.fd, sub)
        return
    readings = folder.readings
    name = walk.leave()
    try:
        os.rmdir(name, dir_fd=walk.fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        # Entries that came in while it was read (or that a reading missed): read again.
        if exc.errno == errno.ENOTEMPTY and readings < RELISTS and walk.enter(name):
            walk.top.readings = readings + 1
            return
        raise TreeError(
            f"cannot remove folder {shown(name)} at depth {walk.depth + 1}: {exc.strerror}"
        ) from exc


def _remove_files(walk: _Descent) -> list[str]:
    """Unlink every entry of the current folder that is no folder; returns the folders."""
    folders: list[str] = []
    with os.scandir(walk.fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.name)
                continue
            try:
                _unlink(walk.fd, entry.name)
            except IsADirectoryError:
                folders.append(entry.name)  # a folder by now
            except OSError as exc:
                raise TreeError(
                    f"cannot remove {shown(entry.name)} at depth {walk.depth}: {exc.strerror}"
                ) from exc
    return folders


# --- measuring --------------------------------------------------------------------------


def disk_usage(roots: Sequence[Path], max_entries: int) -> tuple[int, int]:
    """Bytes allocated and entries under ``roots`` (links not followed, roots not counted).

    Counting stops soon after ``max_entries``. What cannot be read (a folder removed or
    moved while it is measured) is left out; nothing here raises for the tree's sake.
    """
    used, entries = 0, 0
    for root in roots:
        if entries > max_entries:
            break
        try:
            fd = _open_own(root)
        except OSError:
            continue
        try:
            more_bytes, more_entries = _measure(fd, max_entries - entries)
        finally:
            os.close(fd)
        used, entries = used + more_bytes, entries + more_entries
    return used, entries


def _measure(root: int, budget: int) -> tuple[int, int]:
    used, entries = 0, 0
    walk = _Descent(root, _READ)
    try:
        while entries <= budget:
            folder = walk.top
            if folder.todo is None:
                size, count, folder.todo = _measure_entries(walk.fd)
                used, entries = used + size, entries + count
            elif folder.todo:
                walk.enter(folder.todo.pop())
            elif walk.depth:
                walk.leave()
            else:
                break
    except OSError:
        pass  # the tree changed under the walk: what was counted stands
    finally:
        walk.close()
    return used, entries


def _measure_entries(fd: int) -> tuple[int, int, list[str]]:
    used, count, folders = 0, 0, []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                count += 1
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                used += info.st_blocks * 512
                if stat.S_ISDIR(info.st_mode):
                    folders.append(entry.name)
    except OSError:
        pass
    return used, count, folders


# --- walking, owning, copying -----------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """An entry under a walked root: its path from the root, and its lstat."""

    relative: str
    info: os.stat_result

    @property
    def is_folder(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


def entries(root: Path) -> list[Entry]:
    """Every entry under ``root`` (not ``root``), each folder before what it holds; links
    are listed, never followed. For trees of bounded depth (a project, an upload): every
    entry's path is spelled out."""
    found: list[Entry] = []
    fd = _open_own(root)
    walk = _Descent(fd, 0)
    os.close(fd)
    try:
        while True:
            folder = walk.top
            if folder.todo is None:
                folder.todo = []
                for entry in _listing(walk.fd):
                    info = entry.stat(follow_symlinks=False)
                    found.append(Entry(walk.relative(entry.name), info))
                    if stat.S_ISDIR(info.st_mode):
                        folder.todo.append(entry.name)
                folder.todo.reverse()
            elif folder.todo:
                walk.enter(folder.todo.pop())
            elif walk.depth:
                walk.leave()
            else:
                return found
    finally:
        walk.close()


def _listing(fd: int) -> list[os.DirEntry[str]]:
    with os.scandir(fd) as listing:
        return sorted(listing, key=lambda entry: entry.name)


Mode = Callable[[os.stat_result], int | None]  # the mode an entry gets (None: keep it)


def set_owner(root: Path, uid: int | None, mode: Mode, *, gid: int | None = None) -> None:
    """chown to ``uid`` and ``gid`` (default: ``uid``; nothing when ``uid`` is None) and
    chmod (to ``mode(lstat)`` unless None) ``root`` and every entry under it, never
    through a link."""
    owner = None if uid is None else (uid, uid if gid is None else gid)
    fd = _open_own(root.parent)
    try:
        _own(fd, root.name, owner, mode)
        info = _lstat(fd, root.name)
        if info is None or not stat.S_ISDIR(info.st_mode):
            return
        walk = _Descent(fd, 0)
    finally:
        os.close(fd)
    try:
        if not walk.enter(root.name):
            return
        while walk.depth:
            folder = walk.top
            if folder.todo is None:
                folder.todo = []
                with os.scandir(walk.fd) as listing:
                    for entry in listing:
                        _own(walk.fd, entry.name, owner, mode)
                        if entry.is_dir(follow_symlinks=False):
                            folder.todo.append(entry.name)
            elif folder.todo:
                walk.enter(folder.todo.pop())
            else:
                walk.leave()
    finally:
        walk.close()


def _own(parent: int, name: str, owner: tuple[int, int] | None, mode: Mode) -> None:
    if owner is not None:
        os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)
    info = _lstat(parent, name)
    if info is not None and not stat.S_ISLNK(info.st_mode):
        wanted = mode(info)
        if wanted is not None and stat.S_IMODE(info.st_mode) != wanted:
            _chmod_entry(parent, name, 0, wanted)


Admit = Callable[[str, bool], bool]  # (path from the source root, is a folder) -> copy it


def copy_tree(source: Path, target: Path, *, admit: Admit | None = None) -> None:
    """Copy what ``source`` holds into folder ``target`` (made if absent).

    Folders merge into folders; anything else already at a copied name is replaced (a
    folder there with all it holds). Links are copied as links, modes and times kept;
    FIFOs, sockets and devices are left out, and so is whatever ``admit`` refuses (a
    refused folder with everything under it).
    """
    target.mkdir(exist_ok=True)
    src_fd, dst_fd = _open_own(source), _open_own(target)
    src, dst = _Descent(src_fd, 0), _Descent(dst_fd, 0)
    os.close(src_fd)
    os.close(dst_fd)
    try:
        while True:
            folder = src.top
            if folder.todo is None:
                folder.todo = _copy_entries(src, dst, admit)
            elif folder.todo:
                name = folder.todo.pop()
                if src.enter(name) and not dst.enter(name):
                    raise TreeError(f"cannot copy folder {shown(name)}: its copy is no folder")
            elif src.depth:
                info = os.fstat(src.fd)
                os.fchmod(dst.fd, stat.S_IMODE(info.st_mode))
                os.utime(dst.fd, ns=(info.st_atime_ns, info.st_mtime_ns))
                src.leave()
                dst.leave()
            else:
                return
    finally:
        src.close()
        dst.close()


def _copy_entries(src: _Descent, dst: _Descent, admit: Admit | None) -> list[str]:
    """Copy the current folder's files and links, make its folders; returns the folders."""
    folders: list[str] = []
    for entry in _listing(src.fd):
        info = entry.stat(follow_symlinks=False)
        is_folder = stat.S_ISDIR(info.st_mode)
        if admit is not None and not admit(src.relative(entry.name), is_folder):
            continue
        if is_folder:
            _make_folder(dst.fd, entry.name)
            folders.append(entry.name)
        elif stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            _remove_in(dst.fd, entry.name)
            _copy_entry(src.fd, dst.fd, entry.name, info)
    folders.reverse()  # popped from the end: listing order
    return folders


def _make_folder(parent: int, name: str) -> None:
    info = _lstat(parent, name)
    if info is not None and stat.S_ISDIR(info.st_mode):
        return
    _remove_in(parent, name)
    os.mkdir(name, 0o700, dir_fd=parent)


def _copy_entry(src: int, dst: int, name: str, info: os.stat_result) -> None:
    times = (info.st_atime_ns, info.st_mtime_ns)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        os.utime(name, ns=times, dir_fd=dst, follow_symlinks=False)
        return
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    with (
        os.fdopen(os.open(name, os.O_RDONLY | flags | os.O_NONBLOCK, dir_fd=src), "rb") as inp,
        os.fdopen(
            os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flags, 0o600, dir_fd=dst), "wb"
        ) as out,
    ):
        if not stat.S_ISREG(os.fstat(inp.fileno()).st_mode):
            raise TreeError(f"cannot copy {shown(name)}: it is no longer a regular file")
        shutil.copyfileobj(inp, out, COPY_CHUNK)
        out.flush()
        os.fchmod(out.fileno(), stat.S_IMODE(info.st_mode))
        os.utime(out.fileno(), ns=times)
