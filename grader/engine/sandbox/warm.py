"""Warm harness stages: ``python3 -P -m grader_harness pytest ...`` without starting Python.

Most of a harness stage's time is Python importing pytest (about 230 ms of a 330 ms run
of a small suite), the same work for every submission. A stage whose command is exactly
the harness's pytest run (``harness_run``), on the engine's own interpreter
(``interpreter``), is started instead by a *warm zygote*: a zygote (``zygote.py``)
started once per interpreter, as the stage's interpreter would start (``-P``, the
stage's ``PYTHONPATH`` and ``PYTHONNOUSERSITE``), that imported pytest, its built-in
plugins and the standard modules the harness uses before its first request
(``preload``). Its stage process is built exactly as an unshare stage's (the same mounts,
namespaces, cgroups, rlimits, uid, capabilities, no_new_privs and seccomp filter,
``spawn``); where that one calls ``execve``, this one calls ``run``, which gives the
process what a fresh interpreter would have (its environment, ``sys.argv``, standard
streams, signal handlers, a fresh ``__main__``, forgotten failed path lookups) and runs
the module as ``-m`` does (``runpy``), from the copy of ``grader_harness`` inside the
sandbox, then exits as the interpreter would (``SystemExit``, a traceback, atexit).

What differs from a cold start, and why it does not matter: the modules imported ahead
(their files are at the same paths inside: the engine's interpreter is shown read-only
where it is); the hash seed, shared by every warm stage of the engine (set and dict
order of strings in the instructor's tests is the same from one submission to the
next, as with ``PYTHONHASHSEED``); pages shared copy-on-write with the zygote, charged to
the zygote's cgroup until written. The zygote holds no secret (it is started with a
fixed environment, ``spawn.ZYGOTE_ENV``), and student code never runs in a harness
stage: the harness runs it in student cells (``broker.py``), started cold.

Imports only the standard library: the zygote imports this before pytest.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import io
import os
import shlex
import signal
import sys
import threading
import traceback
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

from grader.engine.sandbox.layout import HARNESS_MODULE, Cell, base_env

MODULE = HARNESS_MODULE.removesuffix(".py")
ENABLED = True  # off: every harness stage starts its interpreter (benchmarks compare)
# The interpreter options a warm stage honours (any other makes the stage start cold):
# -P (no workspace on sys.path, which the zygote was started with) and -B (no bytecode
# written, which the harness sets anyway)
OPTIONS = frozenset({"-P", "-B"})
PROGRAMS = ("python3", "python")
# What the harness's pytest run imports besides pytest and its default plugins (each
# imported if it is there): made ready in the zygote
PRELOADED = (
    "grader.harness",  # the standard modules the harness imports (not the module itself)
    "runpy",
    "xml.etree.ElementTree",
    "xml.dom.minidom",
)
SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@% ")


def harness_run(command: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The interpreter options and the harness's arguments (``pytest ...``) of a stage
    that is exactly ``python3 -P [-B] -m grader_harness pytest ARGS`` with plain words
    (no quoting, variable, redirection or other shell syntax); ``None`` for any other."""
    if not command.strip() or not set(command) <= SAFE:
        return None
    words = shlex.split(command)
    if not words or words[0] not in PROGRAMS:
        return None
    at = 1
    options: list[str] = []
    while at < len(words) and words[at] in OPTIONS:
        options.append(words[at])
        at += 1
    if "-P" not in options or words[at : at + 3] != ["-m", MODULE, "pytest"]:
        return None
    return tuple(options), tuple(words[at + 2 :])


def interpreter(cell: Cell, env: Mapping[str, str], program: str = PROGRAMS[0]) -> str | None:
    """The host path of the ``program`` the stage's ``PATH`` finds, when it is the
    engine's own interpreter (the one whose files the sandbox shows where they are);
    ``None`` when the cell or the stage would run another (a project environment's, or
    a program of the toolkit's)."""
    if cell.environment is not None or cell.uid is None or cell.kind == "rlimits":
        return None
    toolkit = cell.inside("toolkit")
    for folder in env.get("PATH", "").split(":"):
        host = cell.toolkit if folder == toolkit else Path(folder)
        if not folder.startswith("/"):
            return None
        candidate = host / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            if folder == toolkit or not _same_interpreter(candidate):
                return None
            return str(candidate)
    return None


def default_interpreter(program: str = PROGRAMS[0]) -> str | None:
    """What ``interpreter`` finds for a cell without a project environment: the first
    ``program`` on a stage's ``PATH`` after the toolkit, when it is the engine's own."""
    for folder in base_env("", "", "")["PATH"].split(":"):
        candidate = Path(folder) / program
        if folder and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate) if _same_interpreter(candidate) else None
    return None


def _same_interpreter(path: Path) -> bool:
    try:
        base: str = getattr(sys, "_base_executable", sys.executable)
        return path.resolve() == Path(base).resolve()
    except (OSError, AttributeError):
        return False


def preload(root: str | None) -> None:
    """In the warm zygote, before its first request: import what the harness's pytest run
    needs, forget ``root`` (where the zygote found ``grader``, when a cold start would not
    have it on ``sys.path``), and move every object out of the collector's sight so the
    stages' collections neither walk nor copy them. Raises ``ImportError``."""
    importlib.import_module("pytest")
    config: Any = importlib.import_module("_pytest.config")
    plugins = [f"_pytest.{name}" for name in getattr(config, "default_plugins", ())]
    for name in (*plugins, *PRELOADED):
        with suppress(ImportError):
            importlib.import_module(name)
    if root is not None and sys.path[:1] == [root]:
        del sys.path[0]
    gc.collect()
    gc.freeze()


def run(args: tuple[str, ...], options: tuple[str, ...], env: Mapping[str, str]) -> NoReturn:
    """In the stage's process (confined, its identity and filter in place): what
    ``python3 OPTIONS -m grader_harness ARGS`` would do, then exit as it would."""
    gc.enable()
    _fresh_signals()
    os.environ.clear()
    # the shell a cold stage's command line runs in exports the folder it starts in
    os.environ.update({**env, "PWD": str(Path.cwd())})
    _fresh_stdio()
    if "-B" in options:
        sys.dont_write_bytecode = True
    # folders the zygote looked in and did not find (the harness's lib exists only here)
    for path, finder in list(sys.path_importer_cache.items()):
        if finder is None:
            del sys.path_importer_cache[path]
    importlib.invalidate_caches()
    sys.argv = ["-m", *args]
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    code = 0
    try:
        runpy: Any = importlib.import_module("runpy")
        runpy._run_module_as_main(MODULE, True)  # what the interpreter calls for -m
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # noqa: BLE001 (the interpreter's top level: print, exit 1)
        sys.excepthook(*sys.exc_info())
        code = 1
    os._exit(_finish(code))


def _fresh_signals() -> None:
    """Python's own handlers, as a fresh interpreter installs them (the zygote's pid 1 put
    every signal back to its default behind Python's back)."""
    for number in signal.valid_signals():
        try:
            if signal.getsignal(number) not in (None, signal.SIG_DFL):
                signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            continue
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for number in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(number, signal.SIG_IGN)


def _fresh_stdio() -> None:
    """Standard streams on the stage's descriptors, buffered as a fresh interpreter's:
    stdout by lines only on a terminal, stderr always by lines."""
    old = sys.stdout
    encoding = getattr(old, "encoding", None) or "utf-8"
    errors = getattr(old, "errors", None) or "strict"
    stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding, errors=errors
    )
    out = io.FileIO(1, "w", closefd=False)
    stdout = io.TextIOWrapper(
        io.BufferedWriter(out), encoding=encoding, errors=errors, line_buffering=out.isatty()
    )
    stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding=encoding,
        errors="backslashreplace",
        line_buffering=True,
    )
    for name, stream in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _exit_code(exc: SystemExit) -> int:
    """The interpreter's reading of an uncaught ``SystemExit``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    with _quiet():
        print(exc.code, file=sys.stderr)
    return 1


def _finish(code: int) -> int:
    """The interpreter's shutdown: wait for threads, run atexit, flush the streams."""
    with _quiet():
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
    with _quiet():
        exits: Any = atexit
        exits._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as the interpreter: output it could not write
    return code


@contextmanager
def _quiet() -> Iterator[None]:
    """Print what went wrong in the interpreter's shutdown work, and go on, as it does."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 (the interpreter's shutdown goes on)
        with suppress(BaseException):
            traceback.print_exception(exc)
