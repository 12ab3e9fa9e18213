"""Untrusted workspace archives: what is accepted, what is refused and why."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from grader.engine.uploads import UploadLimits, entry_parts, unpack_workspace
from grader.errors import InvalidRequestError

LIMITS = UploadLimits(max_files=100, max_unpacked_bytes=1_000_000)


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def targz(entries: Iterable[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def unpack(tmp_path: Path, data: bytes, limits: UploadLimits = LIMITS) -> Path:
    dest = tmp_path / "dest"
    dest.mkdir(parents=True)
    unpack_workspace(io.BytesIO(data), dest, limits)
    return dest


def refused(tmp_path: Path, data: bytes, limits: UploadLimits = LIMITS) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        unpack(tmp_path, data, limits)
    assert caught.value.http_status == 400 and caught.value.error_code == 10
    return caught.value.api_message


def test_quickstart_archive_made_by_gnu_tar_is_accepted(tmp_path: Path) -> None:
    src = tmp_path / "project" / "src"
    (src / "models").mkdir(parents=True)
    (src / "models" / "User.ts").write_text("export class User {}\n")
    (src / "views").mkdir()
    (src / "views" / "Library.tsx").write_text("<Library/>\n")
    archive = tmp_path / "source.tar.gz"
    subprocess.run(
        ["tar", "-czf", str(archive), "--transform", "s,^,workspace/,", "./src"],
        cwd=tmp_path / "project",
        check=True,
    )
    dest = unpack(tmp_path, archive.read_bytes())
    assert (dest / "src" / "models" / "User.ts").read_text() == "export class User {}\n"
    assert (dest / "src" / "views" / "Library.tsx").is_file()


def test_files_folders_modes_and_inner_links_are_kept(tmp_path: Path) -> None:
    data = targz(
        [
            entry("workspace/", tarfile.DIRTYPE),
            entry("workspace/bin/run.sh", data=b"#!/bin/sh\n", mode=0o4755),
            entry("workspace/lib/a.py", data=b"A = 1\n", mode=0o600),
            entry("workspace/lib/link.py", tarfile.SYMTYPE, linkname="a.py"),
            entry("workspace/up", tarfile.SYMTYPE, linkname="lib/../bin"),
        ]
    )
    dest = unpack(tmp_path, data)
    assert (dest / "bin" / "run.sh").stat().st_mode & 0o7777 == 0o755  # no setuid
    assert (dest / "lib" / "a.py").stat().st_mode & 0o777 == 0o644
    assert (dest / "lib" / "link.py").readlink() == Path("a.py")
    assert (dest / "lib" / "link.py").read_text() == "A = 1\n"
    assert (dest / "up" / "run.sh").is_file()


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([entry("src/a.py", data=b"x")], "outside the single workspace/ folder"),
        ([entry("workspace/a.py"), entry("other/b.py")], "outside the single workspace/"),
        ([entry("/workspace/a.py")], "absolute path"),
        ([entry("workspace/../a.py")], "contains '..'"),
        ([entry("workspace/x/../../a.py")], "contains '..'"),
        ([entry("workspace/l", tarfile.SYMTYPE, linkname="/etc/passwd")], "outside the workspace"),
        ([entry("workspace/l", tarfile.SYMTYPE, linkname="../x")], "outside the workspace"),
        ([entry("workspace/d/l", tarfile.SYMTYPE, linkname="../../x")], "outside the workspace"),
        ([entry("workspace/l", tarfile.SYMTYPE, linkname="")], "outside the workspace"),
        (
            [entry("workspace/l", tarfile.SYMTYPE, linkname="sub"), entry("workspace/l/x")],
            "inside the symbolic link",
        ),
        (
            [entry("workspace/a.py"), entry("workspace/h", tarfile.LNKTYPE, linkname="a.py")],
            "a hard link",
        ),
        ([entry("workspace/tty", tarfile.CHRTYPE, devmajor=5, devminor=0)], "a device node"),
        ([entry("workspace/disk", tarfile.BLKTYPE, devmajor=8, devminor=0)], "a device node"),
        ([entry("workspace/pipe", tarfile.FIFOTYPE)], "a FIFO"),
        ([entry("workspace/a.py"), entry("workspace/a.py")], "appears twice"),
        ([entry("workspace/a.py"), entry("workspace/a.py/b")], "inside the file"),
        ([entry("workspace", data=b"not a folder")], "must be a folder"),
        ([entry("workspace/x\0y")], "NUL byte"),
        ([entry("workspace/" + "n" * 300)], "too long a name"),
    ],
)
def test_hostile_entries_are_refused_with_the_reason(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes]], reason: str
) -> None:
    if any("\0" in info.name for info, _ in entries):
        # tarfile cannot write a NUL in a ustar name; pax headers carry it verbatim.
        message = refused(tmp_path, _pax_with_nul())
    else:
        message = refused(tmp_path, targz(entries))
    assert reason in message
    assert message.startswith("source archive rejected: ")


def _pax_with_nul() -> bytes:
    info, data = entry("workspace/placeholder", data=b"x")
    info.pax_headers = {"path": "workspace/x\0y"}
    return targz([(info, data)])


def test_link_escaping_through_another_link_is_refused(tmp_path: Path) -> None:
    # Each link looks harmless on its own; resolved on disk, "a" leaves the workspace.
    data = targz(
        [
            entry("workspace/b", tarfile.SYMTYPE, linkname="."),
            entry("workspace/a", tarfile.SYMTYPE, linkname="b/../x"),
        ]
    )
    assert "leads outside the workspace" in refused(tmp_path, data)


def test_not_gzip_and_not_tar_are_refused(tmp_path: Path) -> None:
    plain_tar = io.BytesIO()
    with tarfile.open(fileobj=plain_tar, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("workspace/a"), io.BytesIO(b""))
    assert "not a gzip file" in refused(tmp_path / "1", plain_tar.getvalue())
    assert "not a valid tar.gz" in refused(tmp_path / "2", gzip.compress(b"hello " * 200))
    assert "not a gzip file" in refused(tmp_path / "3", b"")
    assert "not a valid tar.gz" in refused(tmp_path / "4", targz([entry("workspace/a")])[:40])


def test_an_archive_without_entries_is_refused(tmp_path: Path) -> None:
    assert "empty" in refused(tmp_path, targz([]))


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    data = targz(entry(f"workspace/f{i}") for i in range(6))
    limits = UploadLimits(max_files=5, max_unpacked_bytes=1_000_000)
    assert "more than 5 entries" in refused(tmp_path, data, limits)


def test_gzip_bomb_stops_at_the_cap_while_streaming(tmp_path: Path) -> None:
    # 64 MB of zeros compress to ~64 kB; the cap is 1 MB, and reading must stop there.
    bomb = tarfile.TarInfo("workspace/zeros")
    bomb.size = 64 * 1024 * 1024
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(bomb, _Zeros(bomb.size))
    assert len(buf.getvalue()) < 200_000
    counting = _CountingFile(buf.getvalue())
    dest = tmp_path / "dest"
    dest.mkdir()
    limits = UploadLimits(max_files=10, max_unpacked_bytes=1_000_000)
    with pytest.raises(InvalidRequestError, match="unpacks to more than 1000000 bytes"):
        unpack_workspace(counting, dest, limits)
    assert counting.consumed < 100_000  # it never read the whole compressed stream either


def test_a_file_announcing_more_than_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    data = targz([entry("workspace/big", data=b"y" * 2000)])
    limits = UploadLimits(max_files=10, max_unpacked_bytes=1500)
    assert "unpacks to more than 1500 bytes" in refused(tmp_path, data, limits)


def test_a_huge_extended_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    info, data = entry("workspace/a", data=b"x")
    info.pax_headers = {"comment": "z" * 200_000}
    limits = UploadLimits(max_files=10, max_unpacked_bytes=10_000_000)
    assert "extended header" in refused(tmp_path, targz([(info, data)]), limits)


def test_entry_parts_strips_the_root_and_dot_segments() -> None:
    assert entry_parts("workspace") == ()
    assert entry_parts("./workspace/./src//a.py") == ("src", "a.py")
    with pytest.raises(InvalidRequestError):
        entry_parts("workspacex/a")


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


class _CountingFile(io.BytesIO):
    """Counts how far the reader got into the compressed upload."""

    consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed = max(self.consumed, self.tell())
        return data
