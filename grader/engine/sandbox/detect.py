"""Which sandbox this machine can give student code, decided by running real probes."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from grader.engine.sandbox import spawn, warm
from grader.engine.sandbox.cgroups import describe
from grader.engine.sandbox.layout import (
    KINDS,
    MB,
    SYSTEM_PATH,
    TMP,
    TMP_FILES,
    WORK_FILES,
    Cell,
    Mount,
    SandboxKind,
    base_env,
    bwrap_mounts,
    launch,
    namespace_flags,
    system_mounts,
    which,
)
from grader.engine.sandbox.syscalls import bpf_program, missing
from grader.engine.sandbox.uids import sandbox_uid
from grader.engine.spec import Limits
from grader.errors import SandboxError

# What mountinfo inside shows (README: the kernel names every bind mount's source)
CAPPED_AREA = (
    f"the submission's folders on a tmpfs of their own capped at disk_mb and {WORK_FILES} "
    "files; /proc/self/mountinfo inside names none of the engine's folders (only the "
    "engine's Python and a project environment's folder, read-only)"
)
BIND_SOURCES = (
    "the submission's folders on the host disk, their use polled; /proc/self/mountinfo "
    "inside names the host folders they are bound from"
)


@dataclass(frozen=True)
class SandboxInfo:
    """How strongly this machine confines student code (``grader doctor`` prints it)."""

    kind: SandboxKind
    detail: str
    warning: str | None = None


@functools.cache
def detect_sandbox() -> SandboxInfo:
    """The strongest sandbox that works here, decided by running a real probe of each."""
    problems: dict[SandboxKind, str | None] = {}
    for kind in KINDS:
        problems[kind] = probe_sandbox(kind)
        if problems[kind] is None and kind != "rlimits":
            break
    return choose_sandbox(problems)


def choose_sandbox(problems: Mapping[SandboxKind, str | None]) -> SandboxInfo:
    """The first kind whose probe found no problem; rlimits (with a loud warning) else."""
    for kind in ("bubblewrap", "unshare"):
        if kind in problems and problems[kind] is None:
            return SandboxInfo(kind, _describe(kind))
    why = "; ".join(f"{kind}: {problem}" for kind, problem in problems.items() if problem)
    missing = problems.get("rlimits")
    limits = f"no resource limits either ({missing})" if missing else "resource limits only"
    return SandboxInfo(
        "rlimits",
        _describe("rlimits"),
        warning=(
            "STUDENT CODE RUNS WITHOUT ISOLATION: it can read this machine's files (the "
            f"course, other submissions), use the network and outlive its stage; {limits}. "
            f"Install bubblewrap (apt-get install bubblewrap). Why: {why}"
        ),
    )


def probe_sandbox(kind: SandboxKind) -> str | None:
    """``None`` if a ``kind`` sandbox starts and runs ``true`` here, else why not."""
    tools = _tools(kind)
    if isinstance(tools, str):
        return tools
    with sandbox_uid() as uid:
        argv = launch(uid, Limits(), 5.0, "true")
        if kind == "bubblewrap":
            # the options a real stage uses (an older bwrap lacks --size, --perms)
            mounts = [*system_mounts(), Mount("tmpfs", "/tmp/probe", size=MB)]  # noqa: S108
            argv = [which("bwrap"), *namespace_flags(uid, network=False), *bwrap_mounts(mounts),
                    *argv]  # fmt: skip
        elif kind == "unshare":
            return _probe_unshare(uid)
        try:
            env = base_env("/", "/", "/tmp")  # noqa: S108
            done = subprocess.run(argv, env=env, capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot start: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return f"exit {done.returncode}: {said[-1] if said else 'no message'}"
    return None


def _probe_unshare(uid: int | None) -> str | None:
    """Build a real unshare cell (over empty folders) and run ``true`` in it."""
    with tempfile.TemporaryDirectory(prefix="grader-probe-") as folder:
        root = Path(folder)
        root.chmod(0o755)
        for name in ("home/workspace", "runtime", "streams", "toolkit/lib", "etc"):
            (root / name).mkdir(parents=True)
        for name in ("passwd", "group"):
            (root / "etc" / name).write_text("")
        home, runtime, streams, toolkit, etc = (
            root / name for name in ("home", "runtime", "streams", "toolkit", "etc")
        )
        cell = Cell("unshare", home, runtime, streams, toolkit, etc, uid, Limits())
        try:
            process = spawn.start(
                cell, ["true"], 5.0, env=base_env("/", "/", TMP), seccomp=bpf_program(),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            _, said = process.communicate(timeout=20)
        except (OSError, subprocess.SubprocessError, SandboxError) as exc:
            return f"cannot start: {exc}"
    if process.returncode != 0:
        lines = said.decode(errors="replace").strip().splitlines()
        return f"exit {process.returncode}: {lines[-1] if lines else 'no message'}"
    return None


def _tools(kind: SandboxKind) -> dict[str, str] | str:
    names = {"bubblewrap": ["bwrap", "prlimit"], "unshare": [], "rlimits": ["prlimit"]}
    names[kind] += ["setpriv"] if os.geteuid() == 0 and kind != "unshare" else []
    if kind == "unshare" and os.geteuid() != 0:
        return "needs root"
    found = {name: shutil.which(name, path=SYSTEM_PATH) for name in names[kind]}
    missing = [name for name, path in found.items() if path is None]
    return f"{', '.join(missing)} not found" if missing else {k: str(v) for k, v in found.items()}


def _describe(kind: SandboxKind) -> str:
    who = "a private uid per submission" if os.geteuid() == 0 else "a user namespace"
    if kind == "bubblewrap":
        try:
            said = subprocess.run([which("bwrap"), "--version"], capture_output=True, text=True)
        except OSError:
            said = None
        name = (said.stdout.strip() if said else "") or "bubblewrap"
        tmp = (
            f"{TMP} capped at {TMP_FILES} files; {CAPPED_AREA}"
            if os.geteuid() == 0
            else f"{TMP} capped in bytes only (the engine is not root: no inode cap); "
            + BIND_SOURCES
        )
        return f"{name}: mount, pid, ipc, uts and network namespaces, {who}, rlimits, {tmp}"
    if kind == "unshare":
        return (
            "unshare + chroot by direct system calls: mount, pid, ipc, uts and network "
            f"namespaces, {who}, rlimits, {TMP} capped at {TMP_FILES} files; {CAPPED_AREA}"
        )
    return f"prlimit only, {who if os.geteuid() == 0 else 'the engine user'}"


def separation(kind: SandboxKind, *, root: bool) -> tuple[bool, str]:
    """Whether the student's code is kept from the grade here, and what holds, in words.

    The harness (the instructor's tests, the report) and the student's code (the build
    stage, every process grader_harness starts) run in cells of their own.
    """
    if kind in ("bubblewrap", "unshare"):
        who = (
            "a uid of its own (it cannot signal or trace the harness even by pid)"
            if root
            else "a user namespace of its own (the same host user as the harness)"
        )
        return True, (
            "student code runs in a sandbox of its own: its own mount and pid namespaces "
            f"and {who}; it cannot read .sphere-engine/ or other private paths, write the "
            "report, or see the harness's processes"
        )
    if root:
        return False, (
            "no namespaces: student code runs as a uid of its own and cannot read "
            ".sphere-engine/ (permissions) or write the report, but it sees this machine's "
            "files and processes; install bubblewrap"
        )
    return False, (
        "no namespaces and no uid of its own: student code runs as the same user as the "
        "harness and can read the tests and write the report; install bubblewrap"
    )


def syscall_filter(kind: SandboxKind) -> tuple[bool, str]:
    """Whether student code runs under the seccomp filter (``syscalls``) here, in words."""
    why = missing()
    if kind in ("bubblewrap", "unshare") and why is None:
        return True, (
            "seccomp filter (libseccomp): keyrings, new user namespaces, mount, ptrace, bpf, "
            "perf_event_open, io_uring, kernel modules, kexec, reboot and the like are "
            "refused (EPERM)"
        )
    if kind in ("bubblewrap", "unshare"):
        return False, f"NO SYSCALL FILTER: {why}"
    weaker = (
        "student code may use kernel keyrings (shared by every process of a uid: the "
        "per-submission uid is all that keeps submissions apart), ptrace, bpf, "
        "perf_event_open, io_uring and every other system call its uid is allowed"
    )
    return False, f"NO SYSCALL FILTER without namespaces: {weaker}; install bubblewrap"


def warm_harness(kind: SandboxKind) -> tuple[bool, str]:
    """Whether the harness's pytest run stages start warm here (``warm.py``), in words."""
    run = "`python3 -P -m grader_harness pytest ...` run stages"
    if kind == "rlimits" or os.geteuid() != 0:
        return False, (
            f"cold: {run} start Python and import pytest each time (a warm start needs "
            "the engine as root under bubblewrap or unshare)"
        )
    python = warm.default_interpreter()
    if python is None:
        return False, f"cold: {run} start Python each time (their python3 is not the engine's)"
    return True, (
        f"warm: {run} are forked from {python} with pytest already imported (about 250 ms "
        "less per submission); projects with a requirements.txt start their own Python"
    )


def kernel_limits(kind: SandboxKind) -> tuple[bool, str]:
    """Whether the kernel bounds each stage's memory (kernel memory too), processes and CPU
    share here (``cgroups``), in words."""
    return describe(kind)
