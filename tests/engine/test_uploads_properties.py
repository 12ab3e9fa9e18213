"""Property tests: no archive, however built or garbled, writes outside its folder or
raises anything but the documented rejection."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.engine.uploads import UploadLimits, unpack_workspace
from grader.errors import InvalidRequestError

LIMITS = UploadLimits(max_files=40, max_unpacked_bytes=200_000)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

segments = st.sampled_from(
    ["workspace", "workspace", "workspace", "a", "b", "..", ".", "", "sub", "x.py", "/", "\\"]
)
names = st.lists(segments, min_size=1, max_size=5).map("/".join)
kinds = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.REGTYPE,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.FIFOTYPE,
        tarfile.CHRTYPE,
    ]
)
link_targets = st.lists(
    st.sampled_from(["..", ".", "a", "b", "sub", "/", "/etc", "x.py", "workspace"]),
    min_size=1,
    max_size=4,
).map("/".join)
members = st.tuples(names, kinds, link_targets, st.binary(max_size=64))


def build(entries: list[tuple[str, bytes, str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, target, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def snapshot(root: Path) -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(str((Path(folder) / name).relative_to(root)))
    return found


def check_contained(data: bytes, base: Path) -> None:
    """Unpack ``data`` next to a sentinel folder; only dest/ may change, only the
    rejection may be raised, and everything in dest/ resolves inside dest/."""
    with tempfile.TemporaryDirectory(dir=base) as scratch:
        root = Path(scratch)
        dest = root / "dest"
        dest.mkdir()
        (root / "outside").mkdir()
        (root / "outside" / "keep.txt").write_text("keep")
        before = snapshot(root / "outside")
        rejection = None
        try:
            unpack_workspace(io.BytesIO(data), dest, LIMITS)
        except InvalidRequestError as exc:
            rejection = exc
        if rejection is not None:
            assert rejection.error_code == 10
            assert rejection.api_message.startswith("source archive rejected")
        assert sorted(p.name for p in root.iterdir()) == ["dest", "outside"]
        assert snapshot(root / "outside") == before
        assert (root / "outside" / "keep.txt").read_text() == "keep"
        real_dest = os.path.realpath(dest)
        for rel in snapshot(dest):
            real = os.path.realpath(dest / rel)
            assert real == real_dest or real.startswith(real_dest + os.sep), rel
            assert not (dest / rel).is_block_device() and not (dest / rel).is_fifo()


@SETTINGS
@given(st.lists(members, max_size=12))
def test_built_archives_never_escape_their_folder(tmp_path: Path, entries: list) -> None:
    check_contained(build(entries), tmp_path)


@SETTINGS
@given(st.lists(members, min_size=1, max_size=8), st.data())
def test_garbled_archives_never_escape_their_folder(
    tmp_path: Path, entries: list, data: st.DataObject
) -> None:
    raw = bytearray(build(entries))
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    check_contained(bytes(raw[:cut]), tmp_path)


@SETTINGS
@given(st.binary(max_size=2048), st.booleans())
def test_random_bytes_are_only_ever_rejected(
    tmp_path: Path, noise: bytes, gzip_magic: bool
) -> None:
    check_contained((b"\x1f\x8b\x08\x00" + noise) if gzip_magic else noise, tmp_path)
