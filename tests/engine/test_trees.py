"""Removing, measuring and copying trees a submission could leave: every kind, for real."""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_kit import REPO, needs_root

from grader.engine import trees
from grader.engine.sandbox.watch import MAX_FILES
from grader.errors import TreeError
from tests.support.treekit import (
    ATTACK,
    ATTACK_DONE,
    ATTACK_ENTRIES,
    DEPTH,
    deep_tree,
    listing,
    locked_tree,
    mode_of,
    odd_names,
    reaches_past_path_max,
    remove_trees_under,
)

NOBODY = 65534


@pytest.fixture(autouse=True)
def _no_tree_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    remove_trees_under(tmp_path)


@pytest.fixture
def few_descriptors() -> Iterator[int]:
    """At most 200 open files for this process while the test runs (a deep walk must not
    hold one per level)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 200
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    yield low
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_tree_deeper_than_path_max_is_measured_copied_and_removed(
    tmp_path: Path, few_descriptors: int
) -> None:
    top = tmp_path / "work"
    deep_tree(top / "deep")
    assert reaches_past_path_max(top / "deep")
    assert few_descriptors < DEPTH
    _, entries = trees.disk_usage([top], MAX_FILES)
    assert entries == DEPTH + 2  # the folders, "deep" and the bottom file
    trees.copy_tree(top, tmp_path / "copy")
    assert trees.disk_usage([tmp_path / "copy"], MAX_FILES)[1] == DEPTH + 2
    assert trees.remove_tree(top) is True
    assert not top.exists()
    trees.remove_tree(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


@needs_root
def test_folders_without_read_search_or_write_permission_are_removed(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    locked_tree(mine)
    locked_tree(theirs, owner=NOBODY)  # another uid's, as a sandbox uid's are
    assert mode_of(mine / "a" / "b" / "c") == 0 and (theirs / "a").stat().st_uid == NOBODY
    assert trees.disk_usage([mine], MAX_FILES)[1] == 7
    for top in (mine, theirs):
        trees.remove_tree(top)
        assert not top.exists()


@needs_root
def test_what_another_uid_left_is_removed_by_a_root_engine(tmp_path: Path) -> None:
    """The student's program itself, run as a sandbox uid would run it."""
    base = _shared_with_nobody(tmp_path)
    assert ATTACK_DONE in _as_nobody(tmp_path, ["-c", ATTACK, str(base / "tree")])
    assert (base / "tree" / "a").stat().st_uid == NOBODY
    assert trees.disk_usage([base / "tree"], MAX_FILES)[1] == ATTACK_ENTRIES
    trees.remove_tree(base / "tree")
    assert not (base / "tree").exists()


@needs_root
def test_an_engine_without_root_removes_what_its_sandbox_locked(tmp_path: Path) -> None:
    """Not root, the engine owns what its sandbox wrote: it widens modes, then removes."""
    base = _shared_with_nobody(tmp_path)
    assert ATTACK_DONE in _as_nobody(tmp_path, ["-c", ATTACK, str(base / "tree")])
    engine = (
        "import sys; from pathlib import Path; from grader.engine import trees; "
        "print(trees.disk_usage([Path(sys.argv[1])], 10**6)[1]); "
        "trees.remove_tree(Path(sys.argv[1]))"
    )
    counted = _as_nobody(tmp_path, ["-c", engine, str(base / "tree")])
    assert int(counted) == ATTACK_ENTRIES
    assert not (base / "tree").exists()


def test_names_that_are_not_utf8_or_hold_newlines_survive_every_operation(
    tmp_path: Path,
) -> None:
    names = odd_names(tmp_path / "odd")
    assert listing(tmp_path / "odd") == names
    assert trees.disk_usage([tmp_path / "odd"], MAX_FILES)[1] == 2 * len(names)
    trees.copy_tree(tmp_path / "odd", tmp_path / "copy")
    assert listing(tmp_path / "copy") == names
    for name in map(os.fsdecode, names):
        assert (tmp_path / "copy" / name / name).read_text() == "x"
    walked = {os.fsencode(entry.relative) for entry in trees.entries(tmp_path / "copy")}
    assert walked == {*names, *(name + b"/" + name for name in names)}
    for top in ("odd", "copy"):
        trees.remove_tree(tmp_path / top)
        assert not (tmp_path / top).exists()


def test_links_are_removed_copied_and_measured_as_links_never_followed(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"x" * 100_000)
    top = tmp_path / "work"
    top.mkdir()
    (top / "to-folder").symlink_to(outside)
    (top / "to-file").symlink_to(outside / "precious")
    (top / "dangling").symlink_to(tmp_path / "nowhere")
    used, entries = trees.disk_usage([top], MAX_FILES)
    assert entries == 3 and used < 100_000
    trees.copy_tree(top, tmp_path / "copy")
    assert (tmp_path / "copy" / "to-folder").readlink() == outside
    trees.remove_tree(tmp_path / "copy" / "to-folder")  # a link as the root: only the link
    for folder in (top, tmp_path / "copy"):
        trees.remove_tree(folder)
    assert (outside / "precious").stat().st_size == 100_000
    link_root = tmp_path / "link-root"
    link_root.symlink_to(outside)
    trees.remove_tree(link_root)
    assert not link_root.is_symlink() and (outside / "precious").exists()


def test_as_many_files_as_the_limit_allows_are_counted_and_removed(tmp_path: Path) -> None:
    top = tmp_path / "many"
    (top / "sub").mkdir(parents=True)
    for folder, count in ((top, MAX_FILES - 1000), (top / "sub", 1001)):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for index in range(count):
                os.close(os.open(f"f{index}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        finally:
            os.close(fd)
    assert trees.disk_usage([top], MAX_FILES)[1] > MAX_FILES
    trees.remove_tree(top)
    assert not top.exists()


def test_a_stopped_removal_ends_early_and_the_next_one_finishes(tmp_path: Path) -> None:
    deep_tree(tmp_path / "deep", depth=200)
    stop = threading.Event()
    stop.set()
    assert trees.remove_tree(tmp_path / "deep", stop=stop) is False
    assert (tmp_path / "deep").exists()
    assert trees.remove_tree(tmp_path / "deep") is True
    assert not (tmp_path / "deep").exists()


def test_copying_merges_folders_replaces_the_rest_and_keeps_modes(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (source / "pkg" / "run.sh").chmod(0o751)
    (source / "was-folder").write_text("now a file")
    (source / "skip.me").write_text("no")
    os.mkfifo(source / "fifo")
    deep_tree(target / "was-folder", depth=50)
    (target / "pkg").mkdir(parents=True)
    (target / "pkg" / "kept").write_text("project file")
    trees.copy_tree(source, target, admit=lambda relative, _: relative != "skip.me")
    assert sorted(p.name for p in target.iterdir()) == ["pkg", "was-folder"]
    assert (target / "pkg" / "kept").read_text() == "project file"
    assert mode_of(target / "pkg" / "run.sh") == 0o751
    assert (target / "was-folder").read_text() == "now a file"
    assert (target / "pkg" / "run.sh").stat().st_mtime_ns == (
        (source / "pkg" / "run.sh").stat().st_mtime_ns
    )


def test_a_failed_removal_is_a_tree_error_naming_what_and_why(tmp_path: Path) -> None:
    folder = tmp_path / "stuck"
    folder.mkdir()
    stuck = folder / "immutable"
    stuck.write_text("x")
    if not _make_immutable(stuck):
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(TreeError, match="immutable") as raised:
            trees.remove_tree(folder)
        assert isinstance(raised.value, OSError)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    trees.remove_tree(folder)


def _make_immutable(path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def _shared_with_nobody(tmp_path: Path) -> Path:
    base = tmp_path / "shared"
    base.mkdir()
    os.chown(base, NOBODY, NOBODY)
    return base


def _as_nobody(tmp_path: Path, args: list[str]) -> str:
    """Run the system Python as uid 65534 with this checkout importable; its stdout."""
    python = Path("/usr/bin/python3")
    if not python.exists() or not _readable_by_others(python.resolve()):
        pytest.skip("no Python here that other users may run")
    if not _readable_by_others(REPO / "grader" / "engine" / "trees.py"):
        pytest.skip("the checkout is not readable by other users")
    with _traversable(tmp_path):
        done = subprocess.run(
            [str(python), *args],
            user=NOBODY,
            group=NOBODY,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _readable_by_others(path: Path) -> bool:
    if not path.stat().st_mode & stat.S_IROTH:
        return False
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in path.parents)


class _traversable:  # noqa: N801 - used as a context manager, like contextlib's helpers
    """Let other users search ``path``'s ancestors for the duration."""

    def __init__(self, path: Path) -> None:
        self.changed = [
            (folder, folder.stat().st_mode)
            for folder in [path, *path.parents]
            if not folder.stat().st_mode & stat.S_IXOTH
        ]

    def __enter__(self) -> None:
        for folder, mode in self.changed:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)

    def __exit__(self, *exc: object) -> None:
        for folder, mode in self.changed:
            folder.chmod(stat.S_IMODE(mode))


def test_a_folder_moved_under_a_long_walk_stops_it_instead_of_leading_it_astray(
    tmp_path: Path,
) -> None:
    """Past OPEN_FOLDERS levels an ancestor is reopened through "..": it must be the very
    folder the walk left, else the walk could climb out of the tree it was given."""
    top = tmp_path / "top"
    depth = trees.OPEN_FOLDERS + 10
    top.joinpath(*["d"] * depth).mkdir(parents=True)
    root = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    walk = trees._Descent(root, 0)
    os.close(root)
    try:
        for _ in range(depth):
            assert walk.enter("d")
        assert walk.stack[1].fd is None and walk.stack[-1].fd is not None  # bounded
        # Level 8 moves under level 2 while the walk is deep below it.
        top.joinpath(*["d"] * 8).rename(top.joinpath(*["d"] * 2, "moved"))

        def climb() -> None:
            while walk.depth:
                walk.leave()

        with pytest.raises(TreeError, match="moved while it was walked"):
            climb()
        assert walk.depth == 7  # it stopped where ".." led elsewhere than level 7
    finally:
        walk.close()
