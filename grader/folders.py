"""Plain folders as sources: one snapshot of what is there now.

A local folder that is not a git repository is read as a single snapshot "commit": its
sha is a hash of the content as the archive will see it (paths, kinds, executable bits,
bytes) and its time is the newest modification time inside. Reading never follows a
symlink, never opens anything but regular files (a FIFO would hang), and stops at a size
limit.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from grader.archive import WorkspaceFile, human_size
from grader.commits import utc_from_timestamp
from grader.errors import ArchiveError, SourceError
from grader.roster import is_remote


def plain_folder(repo: str) -> Path | None:
    """``repo`` as a Path when it is a local folder that is not a git repository."""
    if is_remote(repo):
        return None
    path = Path(repo)
    if not path.is_dir():
        return None
    bare = (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()
    return None if (path / ".git").exists() or bare else path


def folder_digest(root: Path, max_bytes: int) -> tuple[str, datetime]:
    """A plain folder's content hash and newest modification time."""
    sha, newest, _ = _walk_folder(root, max_bytes)
    return sha, newest


def folder_files(root: Path, max_bytes: int) -> tuple[str, list[WorkspaceFile]]:
    """A plain folder's content hash and files (paths sorted)."""
    sha, _, files = _walk_folder(root, max_bytes)
    return sha, files


def _walk_folder(root: Path, max_bytes: int) -> tuple[str, datetime, list[WorkspaceFile]]:
    files: list[WorkspaceFile] = []
    newest = root.stat().st_mtime
    total = 0
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise SourceError(f"cannot read the folder {folder}: {exc.strerror}") from exc
        for entry in entries:
            relative = f"{prefix}{entry.name}"
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if entry.name != ".git":
                    pending.append((Path(entry.path), f"{relative}/"))
                continue
            if stat.S_ISLNK(info.st_mode):
                files.append(WorkspaceFile(relative, info.st_mode, link_target=os.readlink(entry)))  # noqa: PTH115 (raw target)
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
                if total > max_bytes:
                    raise ArchiveError(
                        f"the folder {root} holds more than the {human_size(max_bytes)} "
                        "the grader reads from one source"
                    )
                files.append(WorkspaceFile(relative, info.st_mode, _read_regular(entry.path)))
            else:
                continue  # sockets, FIFOs and devices are not coursework (a FIFO would hang)
            newest = max(newest, info.st_mtime)
    files.sort(key=lambda f: f.path)
    return _content_hash(files), utc_from_timestamp(int(newest)), files


def _read_regular(path: str) -> bytes:
    """A regular file's bytes; never follows a symlink or blocks on a FIFO swapped in."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fp:
        if not stat.S_ISREG(os.fstat(fp.fileno()).st_mode):
            raise SourceError(f"{path} changed while it was being read")
        return fp.read()


def _content_hash(files: Sequence[WorkspaceFile]) -> str:
    """What a folder snapshot holds, as the archive sees it: paths, kinds, x bits, bytes."""
    digest = hashlib.sha256()
    for file in files:
        kind = "l" if file.is_symlink else ("x" if file.executable else "f")
        body = (file.link_target or "").encode("utf-8", "surrogateescape") or file.data
        digest.update(file.path.encode("utf-8", "surrogateescape") + b"\0" + kind.encode())
        digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()
