"""The submission's folders under work_dir: workspace, pinned read-only paths, ownership.

Workspace = the project's files (minus ``config.json``), then the submission overlaid. A
read-only path is root's and mounted read-only in the sandbox; before every stage it is
put back exactly as the project has it. Everything else in the home is the stage uid's.
"""

from __future__ import annotations

import atexit
import functools
import os
import py_compile
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from grader import harness
from grader.engine import evaluate, trees
from grader.engine.sandbox import HARNESS_MODULE, INNER_UID, Cell
from grader.engine.spec import RunSpec
from grader.errors import SandboxError

UNIT_REPORT = "unit_tests_report.xml"  # names in the runtime folder (SE_PATH_* point there)
FINAL_REPORT = "tests_report.json"
RESULT = "result.json"
LAUNCHER = '#!/bin/sh\nexec python3 -I -S "{toolkit}/evaluate.py" "$@"\n'


def prepare_cell(spec: RunSpec, cell: Cell, student: Cell) -> tuple[tuple[str, ...], list[str]]:
    """Lay out the folders under work_dir for the harness ``cell`` and the ``student`` cell;
    returns the read-only paths that exist (to pin) and the submitted files dropped because
    they sat at a read-only path.

    Workspace = the project's files (minus ``config.json``), then the submission overlaid;
    a submitted file at (or replacing a folder above) a read-only path is dropped.
    """
    folders = (cell.workspace, cell.runtime, cell.toolkit, cell.lib, cell.etc, cell.streams)
    for folder in (*folders, student.etc):
        folder.mkdir(parents=True, exist_ok=True)
    trees.copy_tree(
        spec.project_dir, cell.workspace, admit=lambda relative, _: relative != "config.json"
    )
    dropped = overlay(spec.upload_dir, cell.workspace, cell.read_only)
    # Pinned: what the project itself has at a read-only path; a link is never pinned, as
    # a mount would follow it on the host (ownership still keeps it from the stage).
    pinned = tuple(p for p in cell.read_only if _real(spec.project_dir, p))
    _write_toolkit(cell)
    _write_identity(cell)
    _write_identity(student)
    if cell.kind == "rlimits":
        (cell.home / ".tmp").mkdir(exist_ok=True)
    _set_owners(cell, student, pinned)
    return pinned, dropped


def _real(root: Path, relative: str) -> bool:
    """``root/relative`` exists and no component below ``root`` is a link."""
    path = root
    for part in relative.split("/"):
        path = path / part
        if path.is_symlink() or not path.exists():
            return False
    return True


def overlay(upload: Path, workspace: Path, read_only: Sequence[str]) -> list[str]:
    """Copy ``upload`` over ``workspace``; returns the dropped paths (read-only places).

    Links are copied as links, never followed; a submitted entry replaces what the
    project has at its path, except that folders merge.
    """
    dropped: list[str] = []

    def admit(relative: str, is_folder: bool) -> bool:
        if not _blocked(relative, read_only, is_folder=is_folder):
            return True
        if is_folder:
            files = [e.relative for e in trees.entries(upload / relative) if not e.is_folder]
            dropped.extend([f"{relative}/{name}" for name in files] or [relative + "/"])
        else:
            dropped.append(relative)
        return False

    trees.copy_tree(upload, workspace, admit=admit)
    return sorted(dropped)


def _blocked(relative: str, read_only: Sequence[str], *, is_folder: bool) -> bool:
    """At or under a read-only path, or a non-folder where a folder above one must be."""
    for pinned in read_only:
        if relative == pinned or relative.startswith(pinned + "/"):
            return True
        if pinned.startswith(relative + "/") and not is_folder:
            return True
    return False


def restore_pins(spec: RunSpec, cell: Cell) -> None:
    """Put every read-only path back exactly as the project has it, before each stage.

    The sandbox already mounts them read-only; this also undoes anything a stage did
    around them (a folder above swapped for a link) where ownership cannot stop it.
    """
    for pinned in cell.read_only:
        # Every folder from home down to the pinned path must be a real folder: bwrap
        # resolves a mount's source on the host, so a link there would show host files.
        folders = [cell.home, cell.workspace]
        for part in pinned.split("/")[:-1]:
            folders.append(folders[-1] / part)
        for folder in folders:
            if folder.is_symlink() or not folder.is_dir():
                _remove(folder)
                folder.mkdir()
            _own(folder, 0, 0o1777, cell)
        target = cell.workspace / pinned
        _remove(target)
        source = spec.project_dir / pinned
        if source.is_dir() and not source.is_symlink():
            trees.copy_tree(source, target)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
        _own_pinned(cell, pinned)


def _read_only_mode(info: os.stat_result, *, private: bool = False) -> int | None:
    """0755 or 0644; without the bits for others when ``private`` (root's, the harness's
    group: for the rlimits fallback, where only permissions keep students out)."""
    if stat.S_ISLNK(info.st_mode):
        return None
    mode = 0o755 if stat.S_ISDIR(info.st_mode) or info.st_mode & 0o111 else 0o644
    return mode & 0o750 if private else mode


def _own(path: Path, uid: int, mode: int | None, cell: Cell, gid: int | None = None) -> None:
    """chown (when the engine is root) and chmod, never through a link."""
    if cell.uid is not None:
        os.lchown(path, uid, uid if gid is None else gid)
    if mode is not None and not path.is_symlink():
        path.chmod(mode)


def _own_pinned(cell: Cell, pinned: str) -> None:
    """A pinned path is root's, read-only; a private one, without namespaces to hide it
    and with a uid of the harness's own, is readable by the harness's group alone."""
    private = pinned in cell.private and cell.kind == "rlimits" and cell.uid is not None
    gid = cell.uid if private else None
    trees.set_owner(
        cell.workspace / pinned,
        0 if cell.uid is not None else None,
        lambda info: _read_only_mode(info, private=private),
        gid=gid,
    )


def _set_owners(cell: Cell, student: Cell, pinned: Sequence[str]) -> None:
    """The student's uid owns the home's files; the harness's uid owns the runtime folder
    (0700: the report paths); root owns the read-only paths and the folders above them.

    Folders above a read-only path (and home, workspace) are root's with the sticky bit:
    both may add files there but cannot rename or remove what root owns.
    """
    above = {cell.home, cell.workspace}
    for path in pinned:
        above.update((cell.workspace / path).parents)
    above = {folder for folder in above if folder == cell.home or cell.home in folder.parents}
    if student.uid is not None and cell.uid is not None:
        trees.set_owner(cell.home, student.uid, lambda _: None)  # home itself: root's below
        os.lchown(cell.runtime, cell.uid, cell.uid)
    cell.runtime.chmod(0o700)
    if (cell.home / ".tmp").exists():
        _own(cell.home / ".tmp", 0, 0o1777, cell)
    for folder in above:
        _own(folder, 0, 0o1777, cell)
    for path in pinned:
        _own_pinned(cell, path)
    if cell.kind == "rlimits" and cell.uid is not None:
        _open_path_for(cell)


def _open_path_for(cell: Cell) -> None:
    """Without namespaces the stage's uid walks the host path to its folders: allow it."""
    work = cell.home.parent
    work.chmod(0o711)
    for folder in work.parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            raise SandboxError(
                f"the sandbox uid cannot reach the submission's folder: {folder} is not "
                "searchable by others (needed by the rlimits fallback)"
            )


def _write_toolkit(cell: Cell) -> None:
    """se_utils_cli in the toolkit; grader_harness.py in its lib (both sides import it)."""
    script = cell.toolkit / "se_utils_cli"
    script.write_text(LAUNCHER.format(toolkit=cell.inside("toolkit")))
    script.chmod(0o755)
    shutil.copyfile(Path(evaluate.__file__), cell.toolkit / "evaluate.py")
    shutil.copyfile(Path(harness.__file__), cell.lib / HARNESS_MODULE)
    cache = cell.lib / "__pycache__"
    cache.mkdir(exist_ok=True)
    shutil.copyfile(_harness_bytecode(), cache / _harness_bytecode().name)


@functools.cache
def _harness_bytecode() -> Path:
    """grader_harness compiled once per engine process (an unchecked-hash .pyc, valid for
    any copy of the same source): both sides of every submission import it, and compiling
    it each time would cost each submission tens of milliseconds twice."""
    source = Path(harness.__file__)
    folder = Path(tempfile.mkdtemp(prefix="grader-harness-pyc-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    name = f"{HARNESS_MODULE.removesuffix('.py')}.{sys.implementation.cache_tag}.pyc"
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    py_compile.compile(str(source), cfile=str(folder / name), invalidation_mode=mode, doraise=True)
    return folder / name


def _write_identity(cell: Cell) -> None:
    uid = INNER_UID if cell.uid is None else cell.uid
    (cell.etc / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"user:x:{uid}:{uid}:user:{cell.inside('home')}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (cell.etc / "group").write_text(f"root:x:0:\nuser:x:{uid}:\nnogroup:x:65534:\n")


def read_capped(path: Path, cap: int) -> bytes | None:
    """A file the stage wrote, or ``None``; links, FIFOs, devices and oversize are errors."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be opened: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        data = stream.read(cap + 1)
    if len(data) > cap:
        raise ValueError(f"{path.name} is more than {cap} bytes")
    return data


def clear_results(runtime: Path) -> None:
    """Remove what a stage left in the result's place (before the first evaluating stage)."""
    for name in (RESULT, FINAL_REPORT):
        _remove(runtime / name)


def _remove(path: Path) -> None:
    trees.remove_tree(path)


def normalize_read_only(paths: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """Workspace-relative read-only paths, cleaned; and those that are not such a path."""
    kept, refused = [], []
    for raw in paths:
        parts = [part for part in raw.strip().split("/") if part not in ("", ".")]
        if not parts or ".." in parts:
            refused.append(raw)
            continue
        kept.append("/".join(parts))
    return tuple(dict.fromkeys(kept)), refused
