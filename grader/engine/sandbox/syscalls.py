"""The seccomp filter every bubblewrap and unshare cell runs under: the kernel's attack
surface a grading job never needs is refused with EPERM.

Built with libseccomp (through the ``pyseccomp`` binding), never assembled by hand, and
exported as a BPF program that bubblewrap loads (``--seccomp FD``) into the sandbox's
init and the stage just before they start, and that the unshare cell's stage loads itself
(``spawn``: prctl, after no_new_privs, right before its exec). Everything else is allowed
(a deny list, as Docker's and nsjail's default profiles: compilers, interpreters and test
runners use a wide and changing set of system calls). A system call made through another
architecture's ABI (``int 0x80`` on x86-64) kills the process instead of slipping past
the rules.

The rlimits kind gets no filter (doctor says so). Without pyseccomp (or libseccomp) no
cell gets one, and doctor says that too.
"""

from __future__ import annotations

import errno
import functools
import os
from typing import Any

REFUSED = (
    # kernel keyrings are not namespaced: one submission could leave a key for the next
    "add_key",
    "request_key",
    "keyctl",
    # mounts and namespaces (a user namespace would give back every capability in it)
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # other processes' memory, kernel tracing and programs
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",  # its requests bypass this filter
    "io_uring_enter",
    "io_uring_register",
    "fanotify_init",
    "name_to_handle_at",
    "open_by_handle_at",  # reaches files by handle, around the mount namespace
    "lookup_dcookie",
    "syslog",
    # the machine itself
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "iopl",
    "ioperm",
    "vhangup",
    "uselib",
    "nfsservctl",
    "_sysctl",
)
CLONE_NEWUSER = 0x10000000  # unshare(2) and clone(2) with it: a new user namespace


@functools.cache
def _built() -> bytes | str:
    """The BPF program, or why there is none."""
    try:
        import pyseccomp  # optional: the engine runs (weaker) without it
    except (ImportError, OSError) as exc:  # OSError: pyseccomp found no libseccomp
        return f"pyseccomp/libseccomp cannot be loaded ({exc}); pip install 'pyseccomp>=0.1.2'"
    try:
        return _program(pyseccomp)
    except OSError as exc:
        return f"libseccomp refused the filter: {exc}"


def _program(seccomp: Any) -> bytes:
    refuse = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    for name in REFUSED:
        rules.add_rule(refuse, name)
    new_user = seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
    rules.add_rule(refuse, "unshare", new_user)
    if seccomp.system_arch() not in (seccomp.Arch.S390, seccomp.Arch.S390X):
        rules.add_rule(refuse, "clone", new_user)  # flags come first (second on s390)
    else:
        rules.add_rule(refuse, "clone", seccomp.Arg(1, seccomp.MASKED_EQ, *[CLONE_NEWUSER] * 2))
    # clone3's flags sit in memory a filter cannot read: ENOSYS makes the C library fall
    # back to clone, whose flags it can
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    fd = os.memfd_create("seccomp-filter", 0)
    try:
        with os.fdopen(os.dup(fd), "wb") as sink:
            rules.export_bpf(sink)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def bpf_program() -> bytes | None:
    """The filter as bubblewrap's ``--seccomp`` reads it (``None``: it cannot be built)."""
    built = _built()
    return built if isinstance(built, bytes) else None


def missing() -> str | None:
    """Why there is no filter (``None``: there is one)."""
    built = _built()
    return built if isinstance(built, str) else None
