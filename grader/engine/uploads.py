"""Untrusted workspace archives, checked entry by entry while they stream.

``unpack_workspace`` reads a tar.gz from a binary stream and writes the contents of its
single ``workspace/`` folder into an empty destination folder. Each entry is checked
before anything is written for it, decompressed bytes are counted as they are read (a
gzip bomb stops at the cap, not at the end), and nothing is ever written outside the
destination: no absolute names, no ``..``, no hard links, devices or FIFOs, no symbolic
link pointing outside, and no entry written through a link. Every refusal is an
``InvalidRequestError`` (the API's 400 / 10) whose message names the entry and the reason.
"""

from __future__ import annotations

import errno
import gzip
import os
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from grader.errors import InvalidRequestError

ROOT = "workspace"
CHUNK = 64 * 1024
MAX_NAME_BYTES = 255  # one path component (the Linux limit)
MAX_PATH_BYTES = 1024  # a whole entry name below workspace/
MAX_META_BYTES = 64 * 1024  # a long-name or pax header: tarfile would read it all into memory

_META_TYPES = {
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
}
# Errors tarfile, gzip and zlib raise on malformed input (BadGzipFile is an OSError).
_READ_ERRORS = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    ValueError,
    OverflowError,
    UnicodeError,
)


@dataclass(frozen=True)
class UploadLimits:
    """How much one archive may hold."""

    max_files: int
    max_unpacked_bytes: int


@dataclass(frozen=True)
class Unpacked:
    """What an accepted archive held."""

    files: int
    folders: int
    links: int
    bytes: int


def reject(message: str) -> InvalidRequestError:
    """The API's answer to a bad upload: 400 with error_code 10 and the reason."""
    return InvalidRequestError(f"source archive rejected: {message}")


class _CountingReader:
    """A read-only stream that refuses to yield more than ``cap`` bytes in total."""

    def __init__(self, inner: gzip.GzipFile, cap: int) -> None:
        self._inner = inner
        self._cap = cap
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        # Never ask the decompressor for more than one byte past the cap, so a bomb
        # cannot expand in memory before it is counted.
        room = self._cap - self.count + 1
        data = self._inner.read(room if size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self._cap:
            raise reject(f"it unpacks to more than {self._cap} bytes")
        return data


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses huge long-name and pax headers before tarfile reads them into memory."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        if self.type in _META_TYPES and self.size > MAX_META_BYTES:
            raise reject(f"an extended header of {self.size} bytes (at most {MAX_META_BYTES})")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


class _Extraction:
    """State of one unpacking: what exists under ``dest`` and what it cost."""

    def __init__(self, dest: Path, limits: UploadLimits) -> None:
        self.dest = dest
        self.limits = limits
        self.folders: set[tuple[str, ...]] = {()}
        self.files: set[tuple[str, ...]] = set()
        self.links: dict[tuple[str, ...], str] = {}
        self.entries = 0
        self.bytes = 0

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = entry_parts(member.name)
        if parts == ():
            if not member.isdir():
                raise reject(f"{member.name!r} must be a folder")
            return
        self.entries += 1
        if self.entries > self.limits.max_files:
            raise reject(f"more than {self.limits.max_files} entries")
        self._check_place(member.name, parts, folder=member.isdir())
        if member.isdir():
            self._make_folders(parts)
        elif member.issym():
            self._link(member, parts)
        elif member.isreg() and not member.issparse():
            self._file(tar, member, parts)
        else:
            raise reject(f"{member.name!r} is {_kind(member)}; only files, folders and links")

    def _check_place(self, name: str, parts: tuple[str, ...], *, folder: bool) -> None:
        for depth in range(1, len(parts)):
            above = parts[:depth]
            if above in self.links:
                raise reject(f"{name!r} lies inside the symbolic link {'/'.join(above)!r}")
            if above in self.files:
                raise reject(f"{name!r} lies inside the file {'/'.join(above)!r}")
        if parts in self.files or parts in self.links or (parts in self.folders and not folder):
            raise reject(f"{name!r} appears twice")

    def _make_folders(self, parts: tuple[str, ...]) -> None:
        for depth in range(1, len(parts) + 1):
            above = parts[:depth]
            if above not in self.folders:
                self._write(above, lambda path: path.mkdir(mode=0o755))
                self.folders.add(above)

    def _link(self, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        target = member.linkname
        if not target or "\0" in target or target.startswith("/"):
            raise reject(f"{member.name!r} is a link to {target!r}, outside the workspace")
        resolved = posixpath.normpath(posixpath.join(*parts[:-1], target) if parts[:-1] else target)
        if resolved == ".." or resolved.startswith("../"):
            raise reject(f"{member.name!r} is a link to {target!r}, outside the workspace")
        self._make_folders(parts[:-1])
        self._write(parts, lambda path: path.symlink_to(target))
        self.links[parts] = target

    def _file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if member.size > self.limits.max_unpacked_bytes - self.bytes:
            raise reject(f"it unpacks to more than {self.limits.max_unpacked_bytes} bytes")
        self._make_folders(parts[:-1])
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - isreg() members always have data
            raise reject(f"{member.name!r} has no data")
        mode = 0o755 if member.mode & 0o100 else 0o644
        path = self.dest.joinpath(*parts)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except OSError as exc:
            raise reject(f"{member.name!r} cannot be written: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_unpacked_bytes:
                    raise reject(f"it unpacks to more than {self.limits.max_unpacked_bytes} bytes")
                out.write(chunk)
        self.files.add(parts)

    def _write(self, parts: tuple[str, ...], action: Any) -> None:
        try:
            action(self.dest.joinpath(*parts))
        except OSError as exc:
            raise reject(
                f"{'/'.join((ROOT, *parts))!r} cannot be written: {exc.strerror}"
            ) from None

    def verify_links(self) -> None:
        """Defence in depth: every link, resolved on disk now, stays under ``dest``."""
        root = os.path.realpath(self.dest)
        for parts, target in self.links.items():
            real = os.path.realpath(self.dest.joinpath(*parts))
            if real != root and not real.startswith(root + os.sep):
                raise reject(
                    f"{'/'.join((ROOT, *parts))!r} is a link to {target!r}, "
                    "which leads outside the workspace"
                )


def entry_parts(name: str) -> tuple[str, ...]:
    """The path of an archive entry below ``workspace/``, or a rejection saying why not."""
    if "\0" in name:
        raise reject(f"{name!r} has a NUL byte in its name")
    if name.startswith("/"):
        raise reject(f"{name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise reject(f"{name!r} contains '..'")
    if not parts or parts[0] != ROOT:
        raise reject(f"{name!r} is outside the single {ROOT}/ folder the archive must hold")
    rest = tuple(parts[1:])
    encoded = [p.encode("utf-8", "surrogateescape") for p in rest]
    if any(len(p) > MAX_NAME_BYTES for p in encoded) or sum(map(len, encoded)) > MAX_PATH_BYTES:
        raise reject(f"{name[:100]!r}... has too long a name")
    return rest


def unpack_workspace(archive: IO[bytes], dest: Path, limits: UploadLimits) -> Unpacked:
    """Write the ``workspace/`` contents of a tar.gz file into the empty folder ``dest``.

    ``archive`` is read once from the start (it is rewound after sniffing two bytes).

    Raises InvalidRequestError (400 / 10) naming the first thing wrong; the caller then
    removes ``dest``. Nothing is written anywhere but below ``dest``.
    """
    state = _Extraction(dest, limits)
    seen_root = False
    try:
        head = archive.read(2)
        if head != b"\x1f\x8b":
            raise reject("not a gzip file (a tar.gz archive is expected)")
        archive.seek(0)
        stream = _CountingReader(
            gzip.GzipFile(fileobj=archive, mode="rb"), limits.max_unpacked_bytes
        )
        # Stream mode ("r|") only ever calls read(); the reader is not a full file.
        fileobj = cast(Any, stream)
        with tarfile.open(fileobj=fileobj, mode="r|", tarinfo=_GuardedTarInfo) as tar:
            for member in tar:
                state.add(tar, member)
                seen_root = True
    except InvalidRequestError:
        raise
    except _READ_ERRORS as exc:
        raise reject(f"not a valid tar.gz archive ({_describe(exc)})") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # the engine's disk, not the student's archive
        raise reject(f"not a valid tar.gz archive ({_describe(exc)})") from None
    if not seen_root:
        raise reject(f"the archive is empty; it must hold one {ROOT}/ folder")
    state.verify_links()
    return Unpacked(len(state.files), len(state.folders) - 1, len(state.links), state.bytes)


def _kind(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return "a hard link"
    if member.ischr() or member.isblk():
        return "a device node"
    if member.isfifo():
        return "a FIFO"
    if member.issparse():
        return "a sparse file"
    return f"an entry of type {member.type!r}"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
