"""Canonical workspace archives: the same files give the same bytes, everywhere.

A Sphere Engine submission is a tar.gz with a single ``workspace/`` folder at its root
(containers-api-quickstart). Ours are canonical, so an unchanged workspace hashes the
same on every run and machine and is never submitted twice:

* entries sorted by name, every parent folder present, ``workspace/`` first;
* fixed mtime (``ARCHIVE_MTIME``), uid/gid 0, empty owner names, modes 0644/0755
  (folders 0755, symlinks 0777 as ``tar`` itself records them), PAX format, UTF-8 names;
* gzip with header mtime 0, no file name, OS byte 255 (unknown);
* nothing under a ``.git`` folder; the assignment's include/exclude globs applied;
* symlinks kept only when relative and resolving inside the workspace, through other
  links too (a link out, an absolute link, a loop: dropped and listed in ``dropped``).

Paths are untrusted: an absolute path, a ``..`` component, a name that is not UTF-8 or
too long raises ``ArchiveError`` naming it; so does a workspace larger than ``max_bytes``.
Whatever is built here passes the local engine's upload checks (``engine/uploads.py``),
so a student's files can never make the engine refuse a submission.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import posixpath
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from grader.errors import ArchiveError

ROOT = "workspace"
ARCHIVE_MTIME = 946_684_800  # 2000-01-01T00:00:00Z: fixed, and not 0 (tools read 0 as "unset")
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
DIRECTORY_MODE = 0o755
SYMLINK_MODE = 0o777
GZIP_LEVEL = 9
MAX_LINK_HOPS = 40  # as the Linux kernel's ELOOP limit
MAX_NAME_BYTES = 255  # one path component (Linux; the local engine refuses longer)
MAX_PATH_BYTES = 1024  # a whole path below workspace/ (the local engine's limit)
# Bump when build_archive gives other bytes for the same files and settings: the state
# remembers which archive each commit became (``packing_key``), and a new format must
# not find the old hashes there.
ARCHIVE_FORMAT = 1


@dataclass(frozen=True)
class WorkspaceFile:
    """One file of a student's work: a POSIX relative path, a mode, contents or a link target.

    ``mode`` is what the source reported (git's 100644/100755/120000 or ``st_mode``);
    only the executable bits matter. ``link_target`` is set for symlinks (``data`` empty).
    """

    path: str
    mode: int = 0o100644
    data: bytes = b""
    link_target: str | None = None

    @property
    def is_symlink(self) -> bool:
        return self.link_target is not None

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


@dataclass(frozen=True)
class Archive:
    """A canonical workspace archive, ready to upload.

    ``sha256`` is the hash of the uncompressed tar stream: it names the content, so it stays
    the same even where a different zlib would compress it to other bytes. ``size`` is
    ``len(data)``; ``file_count`` counts files and symlinks (not folders).
    """

    data: bytes
    sha256: str
    size: int
    file_count: int
    tar_size: int  # uncompressed, what max_bytes limits
    excluded: int = 0  # files left out by the include/exclude globs or under .git
    dropped: tuple[str, ...] = ()  # "path: why" for each symlink left out


def build_archive(
    files: Iterable[WorkspaceFile],
    *,
    include: Sequence[str] = ("**",),
    exclude: Sequence[str] = (),
    max_bytes: int,
) -> Archive:
    """Package ``files`` as a canonical ``workspace/`` tar.gz; raises ``ArchiveError``."""
    kept, excluded = _select(files, include, exclude)
    links: dict[str, str] = {}
    for path, file in kept.items():
        if file.link_target is not None:
            links[path] = file.link_target
    dropped = []
    for path, target in sorted(links.items()):
        why = link_problem(path, target, links)
        if why is not None:
            dropped.append(f"{path}: {why}")
            del kept[path]
    _check_content_size(kept.values(), max_bytes)
    tar = _tar(kept)
    if len(tar) > max_bytes:
        raise ArchiveError(_too_big(len(tar), max_bytes, kept.values()))
    data = _gzip(tar)
    return Archive(
        data=data,
        sha256=hashlib.sha256(tar).hexdigest(),
        size=len(data),
        file_count=len(kept),
        tar_size=len(tar),
        excluded=excluded,
        dropped=tuple(dropped),
    )


def packing_key(include: Sequence[str], exclude: Sequence[str], max_bytes: int) -> str:
    """Everything besides the files that decides what ``build_archive`` makes of them."""
    settings = json.dumps([ARCHIVE_FORMAT, list(include), list(exclude), max_bytes])
    return hashlib.sha256(settings.encode()).hexdigest()


# selecting ----------------------------------------------------------------------------


def _select(
    files: Iterable[WorkspaceFile], include: Sequence[str], exclude: Sequence[str]
) -> tuple[dict[str, WorkspaceFile], int]:
    kept: dict[str, WorkspaceFile] = {}
    excluded = 0
    for file in files:
        path = checked_path(file.path)
        if _under_git(path) or not matches(path, include) or matches(path, exclude):
            excluded += 1
            continue
        if path in kept:
            raise ArchiveError(f"the workspace lists {path!r} twice")
        kept[path] = file
    for path in kept:
        for parent in _parents(path):
            if parent in kept:
                raise ArchiveError(f"{parent!r} is a file, but {path!r} is inside it")
    return kept, excluded


def checked_path(path: str) -> str:
    """``path`` if it is a safe relative POSIX path; raises ``ArchiveError`` naming it."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArchiveError(f"unsafe path in the workspace: {path!r}")
    if "\x00" in path:
        raise ArchiveError(f"path with a NUL byte in the workspace: {path!r}")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"file name is not valid UTF-8: {path!r}") from None
    if len(encoded) > MAX_PATH_BYTES or any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise ArchiveError(f"file name too long for a workspace: {path[:100]!r}")
    return path


def _under_git(path: str) -> bool:
    return any(part.casefold() == ".git" for part in path.split("/"))


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def matches(path: str, patterns: Sequence[str]) -> bool:
    """True if a glob matches ``path`` or one of its folders (``**`` spans folders)."""
    candidates = [path, *_parents(path)]
    return any(glob_regex(p).fullmatch(c) for p in patterns for c in candidates)


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A workspace glob as a regex over whole relative paths.

    ``*`` and ``?`` stay inside one folder name, ``[...]`` is a character class, and a
    ``**`` segment matches any number of folders (``**/x`` also matches ``x``).
    """
    parts = [p for p in pattern.strip("/").split("/") if p]
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        else:
            out.append(_segment(part) + ("" if last else "/"))
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise ArchiveError(f"bad include/exclude glob {pattern!r}: {exc}") from None


def _segment(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := part.find("]", i + 2)) != -1:
            body = part[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = re.escape(body[1:] if negate else body).replace(r"\-", "-")
            out.append(f"(?!/)[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


# symlinks -------------------------------------------------------------------------------


def link_problem(path: str, target: str, links: Mapping[str, str]) -> str | None:
    """Why the symlink ``path -> target`` may not go in the archive, or None when it may.

    The target is followed component by component from the link's folder, through any
    other link in ``links``, and must never climb above the workspace.
    """
    if not target:
        return "empty symlink target"
    if target.startswith("/"):
        return f"absolute symlink target {target!r}"
    # Checked both as text (what the engine checks: it refuses the whole archive otherwise)
    # and as the kernel follows it, through other links.
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if lexical == ".." or lexical.startswith("../"):
        return f"symlink target {target!r} points outside the workspace"
    hops = [MAX_LINK_HOPS]
    if _resolve(path.split("/")[:-1], target, links, hops) is None:
        if hops[0] < 0:
            return f"symlink target {target!r} loops"
        return f"symlink target {target!r} points outside the workspace"
    return None


def _resolve(
    start: list[str], target: str, links: Mapping[str, str], hops: list[int]
) -> list[str] | None:
    if target.startswith("/") or "\x00" in target:
        return None
    stack = list(start)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        inner = links.get("/".join(stack))
        if inner is not None:
            hops[0] -= 1
            if hops[0] < 0:
                return None
            resolved = _resolve(stack[:-1], inner, links, hops)
            if resolved is None:
                return None
            stack = resolved
    return stack


# writing --------------------------------------------------------------------------------


def _tar(files: Mapping[str, WorkspaceFile]) -> bytes:
    folders = {ROOT} | {f"{ROOT}/{parent}" for path in files for parent in _parents(path)}
    members: list[tuple[str, WorkspaceFile | None]] = [(name, None) for name in folders]
    members += [(f"{ROOT}/{path}", file) for path, file in files.items()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name, file in sorted(members, key=lambda m: m[0].encode()):
            info = _member(name, file)
            tar.addfile(info, io.BytesIO(file.data) if file and info.isreg() else None)
    return buffer.getvalue()


def _member(name: str, file: WorkspaceFile | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = ARCHIVE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if file is None:
        info.type, info.mode = tarfile.DIRTYPE, DIRECTORY_MODE
    elif file.link_target is not None:
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, SYMLINK_MODE, file.link_target
    else:
        info.mode = EXECUTABLE_MODE if file.executable else FILE_MODE
        info.size = len(file.data)
    return info


def _gzip(data: bytes) -> bytes:
    """gzip with a fixed header: mtime 0, no file name, OS 255 ("unknown").

    ``gzip.compress`` would let zlib write the OS byte of the platform it was built on.
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=buffer, compresslevel=GZIP_LEVEL, mtime=0
    ) as out:
        out.write(data)
    return buffer.getvalue()


# limits ---------------------------------------------------------------------------------


def _check_content_size(files: Iterable[WorkspaceFile], max_bytes: int) -> None:
    """Fail before building anything when the contents alone are over the cap."""
    files = list(files)
    total = sum(len(f.data) for f in files)
    if total > max_bytes:
        raise ArchiveError(_too_big(total, max_bytes, files))


def _too_big(size: int, max_bytes: int, files: Iterable[WorkspaceFile]) -> str:
    largest = sorted(files, key=lambda f: (-len(f.data), f.path))[:3]
    listed = ", ".join(f"{f.path} ({human_size(len(f.data))})" for f in largest if f.data)
    return (
        f"workspace is {human_size(size)}, more than the {human_size(max_bytes)} this "
        f"assignment accepts (max_archive_mb); largest files: {listed or 'none'}"
    )


def human_size(size: int) -> str:
    """Bytes for people: '950 bytes', '12.5 KB', '20.0 MB'."""
    if size < 1024:
        return f"{size} byte{'' if size == 1 else 's'}"
    if size < 1024**2:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024**2:.1f} MB"
