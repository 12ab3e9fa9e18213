"""Hostile trees for the engine's tests: what student code can leave behind, made for real.

``ATTACK`` is the same thing as a student's program: run inside the sandbox it leaves
every kind of tree in the folder it is given and prints ``ATTACK_DONE`` once all of it
exists, so a test can check that its attack actually ran.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from grader.engine import trees

DEPTH = 3000
LEVEL = "d" * 100  # DEPTH levels of it: a path of ~300 kB, far past PATH_MAX
ODD_NAMES = (b"\xff\xfe not utf-8", b"new\nline", b"-rf", b" ", b"x" * 255)
ATTACK_DONE = "ATTACK_DONE"
# What ATTACK leaves in one folder: the deep folders and their file, three locked
# folders and their three files, "odd" and two entries per odd name, two links.
ATTACK_ENTRIES = DEPTH + 1 + 6 + 1 + 2 * len(ODD_NAMES) + 2

ATTACK = f'''
import os, sys

def deep(top, depth):
    """os.mkdir + os.open(dir_fd=...): no path ever names the bottom."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir({LEVEL!r}, dir_fd=fd)
        below = os.open({LEVEL!r}, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
    os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)

def locked(top):
    """Folders without read, search or write permission, one inside another."""
    os.makedirs(os.path.join(top, "a", "b", "c"))
    for name in ("a/f", "a/b/f", "a/b/c/f"):
        with open(os.path.join(top, name), "w") as out:
            out.write("x")
    os.chmod(os.path.join(top, "a", "b", "c"), 0o000)
    os.chmod(os.path.join(top, "a", "b"), 0o100)
    os.chmod(os.path.join(top, "a"), 0o500)

def odd(top):
    names = {ODD_NAMES!r}
    os.mkdir(os.path.join(top, "odd"))
    for name in names:
        os.mkdir(os.path.join(os.fsencode(top), b"odd", name))
        with open(os.path.join(os.fsencode(top), b"odd", name, name), "w") as out:
            out.write("x")

def links(top):
    os.symlink("/", os.path.join(top, "root-link"))
    os.symlink("/etc/passwd", os.path.join(top, "passwd-link"))

where = sys.argv[1:] or ["."]
for top in where:
    os.makedirs(top, exist_ok=True)
    deep(top, {DEPTH})
    locked(top)
    odd(top)
    links(top)
print("{ATTACK_DONE}", len(where))
'''


def deep_tree(top: Path, depth: int = DEPTH) -> None:
    """``depth`` nested folders under ``top`` and a file at the bottom, made through
    descriptors (the full path exceeds PATH_MAX)."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(LEVEL, dir_fd=fd)
        below = os.open(LEVEL, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
    os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)


def reaches_past_path_max(top: Path, depth: int = DEPTH) -> bool:
    """The tree's full path is longer than PATH_MAX, so no path-based call can reach it."""
    bottom = top.joinpath(*[LEVEL] * depth, "bottom")
    if len(os.fsencode(bottom)) <= os.pathconf(top, "PC_PATH_MAX"):
        return False
    try:
        os.lstat(bottom)
    except OSError as exc:
        return exc.errno == 36  # ENAMETOOLONG
    return False


def locked_tree(top: Path, owner: int | None = None) -> None:
    """Folders without read, search or write permission (optionally another uid's)."""
    inner = top / "a" / "b" / "c"
    inner.mkdir(parents=True)
    for folder in (top / "a", top / "a" / "b", inner):
        (folder / "f").write_text("x")
    (top / "a" / "unreadable-file").write_text("x")
    (top / "a" / "unreadable-file").chmod(0)
    if owner is not None:
        for path in [top, *top.rglob("*")]:
            os.lchown(path, owner, owner)
    inner.chmod(0o000)
    (top / "a" / "b").chmod(0o100)
    (top / "a").chmod(0o500)
    top.chmod(0o555)


def odd_names(top: Path) -> list[bytes]:
    """Folders and files whose names are not UTF-8, hold a newline, or are 255 bytes."""
    top.mkdir(parents=True, exist_ok=True)
    for raw in ODD_NAMES:
        name = os.fsdecode(raw)  # bytes that are not UTF-8 become surrogates, and back
        (top / name).mkdir()
        (top / name / name).write_text("x")
    return sorted(ODD_NAMES)


def listing(folder: Path) -> list[bytes]:
    """The names in ``folder``, as the bytes on disk."""
    return sorted(os.fsencode(path.name) for path in folder.iterdir())


def remove_trees_under(folder: Path) -> None:
    """After a test: pytest's own clean-up (shutil.rmtree) cannot remove such trees."""
    if folder.exists():
        for child in folder.iterdir():
            trees.remove_tree(child)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)
