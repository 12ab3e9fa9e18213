"""Confine one stage of a submission: namespaces, a private uid, resource limits.

Student code is hostile. Each stage runs ``/bin/sh -c <command>`` in a fresh sandbox:

* **bubblewrap** (preferred) or **unshare** + chroot (no set-up program: a forked child
  of the engine's small zygote process makes the namespaces, mounts, chroot and drop by
  direct system calls, ``spawn``, ``zygote``): new mount, pid, ipc, uts and (unless
  the project asks for it) network namespaces (under bubblewrap, as root, made ahead by
  a thread of the engine's, one per stage, ``netns``). The stage sees only read-only system
  directories (``/usr``, ``/lib*``, the ``/etc`` pieces toolchains need: copies, in one
  mount, when the engine is root, ``tmpfs.system_etc``), the exact
  prefixes of the Python the engine runs in, the project's extra read-only paths, and
  the submission's own directories (layout below). No ``/root``, no ``/home``, no course
  folder, no engine data, no other submission. When the stage's first process ends, the
  pid namespace goes and takes every process with it.
* **rlimits** (last resort, loud warning): no isolation at all, only the limits below.

Under bubblewrap and unshare a seccomp filter (``syscalls``) refuses keyrings, new user
namespaces, mounts, ptrace, bpf, perf_event_open and the like (loaded last, right before
the stage's exec); rlimits has none. Inside, ``/proc/1/cmdline`` names no host path;
``/proc/self/mountinfo`` names a bind's source within its file system, as the kernel
does for every bind: with the engine as root the submission's folders are a tmpfs of
their own (``tmpfs.cell_area``), so only the shared read-only folders (the engine's
Python, a project environment) are named; without root, the submission's host folders.

In every kind the stage runs as a uid of its own (``SANDBOX_UID_BASE`` + n, one per
running submission, handed out in rotation through ``SANDBOX_UIDS`` by every engine
process on the host, so a recent submission's uid and the kernel state tied to it, such
as keyrings, never reach the next) when the engine is root, so ``RLIMIT_NPROC`` binds (it
never binds root) and the stage owns nothing but its own files; every capability is
dropped (``setpriv`` under bubblewrap, ``spawn``'s own calls under unshare). rlimits
(``layout.stage_rlimits``: set by the engine's ``prlimit(2)`` on bubblewrap's sandboxed
process while it waits to run the stage, by ``spawn``'s ``setrlimit`` under unshare, by
the ``prlimit`` program otherwise) set processes, open files, file size, CPU seconds, no
core files and a generous address space. Memory is watched from outside:
every ``POLL_SECONDS`` the sum of the stage's resident anonymous and shared memory is
read from /proc, and past ``memory_mb`` the stage is killed with SIGKILL (reported as a
memory-limit kill).

The kernel bounds what polling cannot (``cgroups``, bubblewrap and unshare cells, when the
engine is root and the machine has writable cgroups, v1 or delegated v2): every stage and
every student process the broker starts joins a cgroup of its own before it runs
anything of the stage's, with a memory limit counting kernel memory (``memory_mb`` plus
its tmpfs pages plus ``KERNEL_MB``: an OOM kill there is a memory-limit kill too), ``pids.max`` (its
``processes`` plus the sandbox's own) and the same CPU weight as every other stage, so
one submission's threads cannot starve its neighbours. Where a controller is missing,
``grader doctor``'s ``limits`` line says which guarantee is weaker.

Disk (our choice): ``/tmp`` and ``/dev/shm`` are private tmpfs mounts capped in bytes and
in files (``TMP_FILES``, ``SHM_FILES``: each file costs kernel memory no limit counts;
bubblewrap cannot cap inodes, so as root the engine mounts both on the host for the
stage, ``tmpfs.capped``, and binds them in; unshare's pid 1 caps them itself). The
home, workspace, runtime, toolkit and passwd files live, with the engine as root under
bubblewrap or unshare, on one tmpfs per submission capped at ``disk_mb`` and
``WORK_FILES`` entries (``tmpfs.cell_area``; RAM, at most ``disk_mb`` per running
submission, and only a ``disk_mb`` of at most an eighth of the machine's memory): the
kernel refuses what passes the cap, and the watcher reads its use with one ``statvfs``
every ``POLL_SECONDS`` and reports a full area as a disk-limit kill.
Otherwise they live on the host disk under ``work_dir`` and the watcher walks them
(less often when a walk is slow), killing the stage past ``disk_mb`` or ``WORK_FILES``:
a burst between two walks overshoots by what the disk writes in that time. Every file
is capped by ``RLIMIT_FSIZE``; ``/tmp`` and ``/dev/shm`` count toward ``disk_mb`` too.

Layout inside (bubblewrap, unshare)::

    /home/user               the submission's home (writable; host: its area's home)
    /home/user/workspace     the workspace: project files + the submission, ro paths pinned
    /sphere-engine/bin       se_utils_cli (read-only, first on PATH)
    /sphere-engine/runtime   unit-tests XML, tests report, scenario result (writable)
    /sphere-engine/streams   earlier stages' outputs (read-only)
    /sphere-engine/env       the project's own Python environment, when it has one (ro)
    /tmp, /dev/shm           private tmpfs mounts
    /dev                     null, zero, full, random, urandom and the fd links (no
                             terminals; as root, both kinds bind one the engine made once,
                             ``tmpfs.system_dev``)
    /usr, /lib*, /etc pieces read-only system; sys.prefix and sys.base_prefix read-only

The engine not being root: bubblewrap runs in a user namespace (the stage is uid 1000
inside, the engine's user outside, so RLIMIT_NPROC counts per namespace), and no nested
user namespaces; unshare needs root; the process watch follows descendants instead of a uid.
"""

import logging
import os

from grader.engine.sandbox import cgroups, tmpfs
from grader.engine.sandbox.broker import Broker
from grader.engine.sandbox.detect import SandboxInfo, detect_sandbox, probe_sandbox
from grader.engine.sandbox.layout import (
    HARNESS_MODULE,
    HOME,
    INNER_UID,
    KINDS,
    LIB,
    RUNTIME,
    STREAMS,
    TOOLKIT,
    WORKSPACE,
    Cell,
    Mount,
    Role,
    SandboxKind,
    address_space_bytes,
    cell_mounts,
    readable_paths,
    stage_argv,
    stage_env,
    system_mounts,
)
from grader.engine.sandbox.tmpfs import cell_area
from grader.engine.sandbox.uids import (
    SANDBOX_UID_BASE,
    SANDBOX_UIDS,
    leftover_processes,
    sandbox_uid,
)
from grader.engine.sandbox.watch import POLL_SECONDS, StageExit, prewarm, run_stage

log = logging.getLogger(__name__)


def sweep_dead_engines() -> None:
    """Unmount and remove what engine processes that ended left on this machine (their
    submissions' tmpfs mounts, their stages' cgroups); as root, else nothing to do."""
    if os.geteuid() != 0:
        return
    try:
        tmpfs.engine_folder()  # made once per process, after sweeping the dead ones'
    except OSError as exc:
        log.warning("cannot sweep what ended engines left in %s: %s", tmpfs.BASE, exc)
    cgroups.missing()  # the same for cgroups


__all__ = [
    "HARNESS_MODULE",
    "HOME",
    "INNER_UID",
    "KINDS",
    "LIB",
    "POLL_SECONDS",
    "RUNTIME",
    "SANDBOX_UIDS",
    "SANDBOX_UID_BASE",
    "STREAMS",
    "TOOLKIT",
    "WORKSPACE",
    "Broker",
    "Cell",
    "Mount",
    "Role",
    "SandboxInfo",
    "SandboxKind",
    "StageExit",
    "address_space_bytes",
    "cell_area",
    "cell_mounts",
    "detect_sandbox",
    "leftover_processes",
    "prewarm",
    "probe_sandbox",
    "readable_paths",
    "run_stage",
    "sandbox_uid",
    "stage_argv",
    "stage_env",
    "sweep_dead_engines",
    "system_mounts",
]
