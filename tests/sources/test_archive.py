"""Canonical workspace archives: layout, determinism, globs, symlinks, limits, hostile paths."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from grader.archive import (
    ARCHIVE_MTIME,
    Archive,
    WorkspaceFile,
    build_archive,
    human_size,
    link_problem,
    matches,
)
from grader.config import DEFAULT_EXCLUDE
from grader.engine.uploads import UploadLimits, unpack_workspace
from grader.errors import ArchiveError

MB = 2**20


def members(archive: Archive) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
        return tar.getmembers()


def contents(archive: Archive) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name] = extracted.read()
    return out


def build(
    *files: WorkspaceFile,
    include: Sequence[str] = ("**",),
    exclude: Sequence[str] = (),
    max_bytes: int = MB,
) -> Archive:
    return build_archive(files, include=include, exclude=exclude, max_bytes=max_bytes)


SOLUTION = WorkspaceFile("solution.py", 0o100644, b"def add(a, b):\n    return a + b\n")
SCRIPT = WorkspaceFile("bin/run.sh", 0o100755, b"#!/bin/sh\necho hi\n")


def test_members_sit_under_one_workspace_folder_sorted_with_parents() -> None:
    archive = build(SOLUTION, SCRIPT, WorkspaceFile("bin/lib/x.txt", data=b"x"))
    assert [m.name for m in members(archive)] == [
        "workspace",
        "workspace/bin",
        "workspace/bin/lib",
        "workspace/bin/lib/x.txt",
        "workspace/bin/run.sh",
        "workspace/solution.py",
    ]
    assert archive.file_count == 3


def test_metadata_is_normalised() -> None:
    archive = build(SOLUTION, SCRIPT)
    by_name = {m.name: m for m in members(archive)}
    assert by_name["workspace/solution.py"].mode == 0o644
    assert by_name["workspace/bin/run.sh"].mode == 0o755
    assert by_name["workspace/bin"].mode == 0o755
    for member in by_name.values():
        assert (member.mtime, member.uid, member.gid) == (ARCHIVE_MTIME, 0, 0)
        assert (member.uname, member.gname) == ("", "")


def test_gzip_header_has_no_time_no_name_and_unknown_os() -> None:
    data = build(SOLUTION).data
    assert data[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME flag
    assert data[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert data[9] == 255


def test_sha256_names_the_uncompressed_tar() -> None:
    archive = build(SOLUTION)
    assert archive.sha256 == hashlib.sha256(gzip.decompress(archive.data)).hexdigest()
    assert archive.size == len(archive.data)
    assert archive.tar_size == len(gzip.decompress(archive.data))


def test_same_files_in_any_order_give_the_same_bytes() -> None:
    one = build(SOLUTION, SCRIPT)
    two = build(SCRIPT, SOLUTION)
    assert one.data == two.data
    assert one.sha256 == two.sha256


def test_changed_content_or_mode_changes_the_hash() -> None:
    base = build(SOLUTION).sha256
    assert build(WorkspaceFile("solution.py", data=b"other")).sha256 != base
    assert build(WorkspaceFile("solution.py", 0o100755, SOLUTION.data)).sha256 != base


def test_git_folders_never_reach_the_archive() -> None:
    archive = build(
        SOLUTION,
        WorkspaceFile(".git/config", data=b"[core]"),
        WorkspaceFile("vendor/lib/.git/HEAD", data=b"ref"),
        WorkspaceFile(".GIT/hooks/x", data=b"x"),
        include=["**"],
    )
    assert list(contents(archive)) == ["workspace/solution.py"]
    assert archive.excluded == 3


def test_default_excludes_drop_caches() -> None:
    archive = build(
        SOLUTION,
        WorkspaceFile("__pycache__/solution.cpython-311.pyc", data=b"\x00"),
        WorkspaceFile("pkg/__pycache__/m.pyc", data=b"\x00"),
        WorkspaceFile("old.pyc", data=b"\x00"),
        WorkspaceFile(".DS_Store", data=b"\x00"),
        WorkspaceFile("docs/.DS_Store", data=b"\x00"),
        exclude=DEFAULT_EXCLUDE,
    )
    assert list(contents(archive)) == ["workspace/solution.py"]


def test_include_keeps_only_matching_files() -> None:
    archive = build(
        SOLUTION,
        SCRIPT,
        WorkspaceFile("src/a/b.py", data=b"b"),
        WorkspaceFile("notes.txt", data=b"n"),
        include=["*.py", "src/**"],
    )
    assert sorted(contents(archive)) == ["workspace/solution.py", "workspace/src/a/b.py"]


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("a.pyc", "**/*.pyc", True),
        ("x/y/a.pyc", "**/*.pyc", True),
        ("x/y/a.pyc", "*.pyc", False),
        ("build/out/a.o", "build", True),  # a pattern naming a folder covers its contents
        ("src/build.py", "build", False),
        ("a/b/c", "a/**/c", True),
        ("a/c", "a/**/c", True),
        ("data/x1.csv", "data/x[0-9].csv", True),
        ("data/xa.csv", "data/x[!0-9].csv", True),
        ("data/x1.csv", "data/x[!0-9].csv", False),
        ("a/b", "a?b", False),
        ("anything/at/all", "**", True),
    ],
)
def test_globs_match_whole_paths_with_double_star_across_folders(
    path: str, pattern: str, expected: bool
) -> None:
    assert matches(path, [pattern]) is expected


def test_bad_glob_is_an_archive_error_naming_it() -> None:
    with pytest.raises(ArchiveError, match=r"bad include/exclude glob 'x\[z-a\]'"):
        build(SOLUTION, exclude=["x[z-a]"])


def test_relative_symlink_inside_the_workspace_is_kept() -> None:
    archive = build(
        SOLUTION,
        WorkspaceFile("link.py", 0o120000, link_target="solution.py"),
        WorkspaceFile("sub/up.py", 0o120000, link_target="../solution.py"),
    )
    links = {m.name: m.linkname for m in members(archive) if m.issym()}
    assert links == {"workspace/link.py": "solution.py", "workspace/sub/up.py": "../solution.py"}
    assert archive.dropped == ()


@pytest.mark.parametrize(
    ("links", "dropped"),
    [
        ({"etc": "/etc/passwd"}, "etc: absolute symlink target '/etc/passwd'"),
        ({"up": "../secret"}, "up: symlink target '../secret' points outside the workspace"),
        ({"sub/deep": "../../x"}, "points outside the workspace"),
        ({"d": "sub/..", "x": "d/../outside"}, "x: symlink target 'd/../outside' points outside"),
        ({"sub/root": "..", "x": "sub/root/../y"}, "x: symlink target 'sub/root/../y' points"),
        ({"a": "b", "b": "a"}, "loops"),
        ({"d": "sub/f2", "x": "d/../../y"}, "x: symlink target 'd/../../y' points outside"),
        ({"empty": ""}, "empty symlink target"),
    ],
)
def test_symlinks_leaving_the_workspace_are_dropped_and_listed(
    links: dict[str, str], dropped: str
) -> None:
    files = [WorkspaceFile(p, 0o120000, link_target=t) for p, t in links.items()]
    archive = build(SOLUTION, WorkspaceFile("sub/f", data=b""), *files)
    assert any(dropped in line for line in archive.dropped), archive.dropped
    names = {m.name for m in members(archive)}
    for line in archive.dropped:
        assert f"workspace/{line.split(':')[0]}" not in names


def test_link_through_another_link_is_resolved_like_the_kernel_does() -> None:
    links = {"sub/root": "..", "x": "sub/root/y"}
    assert link_problem("x", links["x"], links) is None
    assert link_problem("sub/root", "..", links) is None


def test_workspace_over_the_cap_says_how_big_and_what_the_cap_is() -> None:
    big = WorkspaceFile("data/big.bin", data=b"\x00" * 3000)
    with pytest.raises(ArchiveError) as info:
        build(SOLUTION, big, max_bytes=2048)
    message = str(info.value)
    assert "workspace is 3.0 KB, more than the 2.0 KB this assignment accepts" in message
    assert "data/big.bin (2.9 KB)" in message


def test_tar_overhead_counts_towards_the_cap() -> None:
    files = [WorkspaceFile(f"f{n}", data=b"x") for n in range(10)]
    with pytest.raises(ArchiveError, match=r"workspace is 20\.0 KB"):  # headers, 10 KB records
        build(*files, max_bytes=15_000)
    assert build(*files, max_bytes=25_000).file_count == 10


def test_excluded_files_do_not_count_towards_the_cap() -> None:
    big = WorkspaceFile("data/big.bin", data=b"\x00" * 50_000)
    assert build(SOLUTION, big, exclude=["data"], max_bytes=20_000).file_count == 1


@pytest.mark.parametrize(
    "path", ["../escape.py", "/etc/passwd", "a//b", "a/./b", "a/../../b", "", "x\x00y"]
)
def test_unsafe_paths_are_refused_by_name(path: str) -> None:
    with pytest.raises(ArchiveError, match="path"):
        build(WorkspaceFile(path, data=b"x"))


@pytest.mark.parametrize("path", ["x" * 256, "/".join(["d" * 200] * 6)])
def test_names_too_long_for_the_engine_are_refused(path: str) -> None:
    with pytest.raises(ArchiveError, match="file name too long"):
        build(WorkspaceFile(path, data=b"x"))


def test_file_name_that_is_not_utf8_is_refused() -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    with pytest.raises(ArchiveError, match="not valid UTF-8"):
        build(WorkspaceFile(name, data=b"x"))


def test_a_path_listed_twice_or_under_a_file_is_refused() -> None:
    with pytest.raises(ArchiveError, match="twice"):
        build(SOLUTION, SOLUTION)
    with pytest.raises(ArchiveError, match=r"'solution\.py' is a file, but 'solution\.py/x'"):
        build(SOLUTION, WorkspaceFile("solution.py/x", data=b""))


def test_empty_workspace_is_still_a_valid_archive() -> None:
    archive = build(include=["*.py"])
    assert [m.name for m in members(archive)] == ["workspace"]
    assert archive.file_count == 0


def test_archive_extracts_with_the_strict_data_filter(tmp_path: Path) -> None:
    archive = build(SOLUTION, SCRIPT, WorkspaceFile("l", 0o120000, link_target="bin/run.sh"))
    with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / "workspace" / "solution.py").read_bytes() == SOLUTION.data
    assert os.access(tmp_path / "workspace" / "bin" / "run.sh", os.X_OK)
    assert (tmp_path / "workspace" / "l").read_bytes() == SCRIPT.data


def test_human_sizes() -> None:
    sizes = [human_size(n) for n in (1, 950, 12_800, 20 * MB)]
    assert sizes == ["1 byte", "950 bytes", "12.5 KB", "20.0 MB"]


# properties -------------------------------------------------------------------------

NAME = st.text(alphabet="abcé_.-", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
PATH = st.lists(NAME, min_size=1, max_size=3).map("/".join)
FILE = st.builds(
    WorkspaceFile,
    path=PATH,
    mode=st.sampled_from([0o100644, 0o100755, 0o100664]),
    data=st.binary(max_size=300),
)


def no_conflicts(files: list[WorkspaceFile]) -> bool:
    paths = {f.path for f in files}
    return not any(
        "/".join(f.path.split("/")[:n]) in paths
        for f in files
        for n in range(1, f.path.count("/") + 1)
    )


WORKSPACES = st.lists(FILE, max_size=12, unique_by=lambda f: f.path).filter(no_conflicts)


@settings(max_examples=100, deadline=None)
@given(files=WORKSPACES, order=st.randoms(use_true_random=False))
def test_property_any_order_gives_identical_bytes(
    files: list[WorkspaceFile], order: object
) -> None:
    shuffled = list(files)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    one = build_archive(files, max_bytes=10 * MB)
    two = build_archive(shuffled, max_bytes=10 * MB)
    assert (one.data, one.sha256) == (two.data, two.sha256)


@settings(max_examples=100, deadline=None)
@given(files=WORKSPACES)
def test_property_round_trip_keeps_every_file_under_workspace(files: list[WorkspaceFile]) -> None:
    archive = build_archive(files, max_bytes=10 * MB)
    found = members(archive)
    for member in found:
        assert member.name == "workspace" or member.name.startswith("workspace/")
        assert ".." not in member.name.split("/")
        assert member.mode in (0o644, 0o755)
    expected = {
        f"workspace/{f.path}": f.data
        for f in files
        if not any(p.casefold() == ".git" for p in f.path.split("/"))
    }
    assert contents(archive) == expected
    names = [m.name for m in found]
    assert names == sorted(names, key=str.encode)


TARGET = st.lists(st.sampled_from(["a", "b", "sub", "..", "."]), min_size=1, max_size=4).map(
    "/".join
) | st.just("/etc")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    links=st.dictionaries(
        st.sampled_from(["a", "b", "sub/a", "sub/b", "sub/deep/c"]), TARGET, max_size=4
    )
)
def test_property_kept_symlinks_resolve_inside_the_workspace_on_disk(
    tmp_path_factory: pytest.TempPathFactory, links: dict[str, str]
) -> None:
    files = [WorkspaceFile(p, 0o120000, link_target=t) for p, t in links.items()]
    files.append(WorkspaceFile("sub/deep/file", data=b"f"))
    assume(no_conflicts(files))
    archive = build_archive(files, max_bytes=MB)
    target = tmp_path_factory.mktemp("x")
    with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
        tar.extractall(target, filter="tar")
    root = os.path.realpath(target / "workspace")
    for member in members(archive):
        if member.issym():
            resolved = os.path.realpath(target / member.name)
            assert resolved == root or resolved.startswith(root + os.sep), member.name


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=WORKSPACES,
    links=st.dictionaries(st.sampled_from(["l1", "sub/l2", "sub/deep/l3"]), TARGET, max_size=3),
)
def test_property_every_archive_passes_the_engines_upload_checks(
    tmp_path_factory: pytest.TempPathFactory, files: list[WorkspaceFile], links: dict[str, str]
) -> None:
    workspace = files + [WorkspaceFile(p, 0o120000, link_target=t) for p, t in links.items()]
    assume(no_conflicts(workspace) and len({f.path for f in workspace}) == len(workspace))
    archive = build_archive(workspace, max_bytes=10 * MB)
    dest = tmp_path_factory.mktemp("upload")
    unpacked = unpack_workspace(
        io.BytesIO(archive.data), dest, UploadLimits(max_files=1000, max_unpacked_bytes=10 * MB)
    )
    assert unpacked.files + unpacked.links == archive.file_count
    for path, data in contents(archive).items():
        assert (dest / path.removeprefix("workspace/")).read_bytes() == data
