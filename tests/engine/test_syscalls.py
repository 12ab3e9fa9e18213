"""The seccomp filter: what it refuses, that ordinary work still runs, what doctor says."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pyseccomp
import pytest
from runner_kit import NAMESPACED, REPO, make_spec, needs_sandbox, sandbox_processes, stages, text

from grader.api.models import StatusCode
from grader.engine.runner import run_submission
from grader.engine.sandbox import SandboxInfo
from grader.engine.sandbox.detect import syscall_filter
from grader.engine.sandbox.syscalls import bpf_program, missing
from grader.engine.spec import Limits, RunOutcome

pytestmark = [pytest.mark.sandbox, needs_sandbox]

CALLS = [  # name, arguments (ints, bytes for pointers to strings)
    ("getpid", ()),  # the control: the script really makes system calls
    ("add_key", (b"user", b"grader-probe", b"secret", 6, -4)),  # -4: the user keyring
    ("keyctl", (0, -4, 1)),  # KEYCTL_GET_KEYRING_ID, creating it
    ("request_key", (b"user", b"grader-probe", None, 0)),
    ("unshare", (0x10000000,)),  # CLONE_NEWUSER
    ("clone", (0x10000000 | 17, 0, 0, 0, 0)),  # CLONE_NEWUSER | SIGCHLD
    ("setns", (-1, 0)),
    ("mount", (b"none", b"/tmp", b"tmpfs", 0, None)),
    ("umount2", (b"/tmp", 0)),
    ("pivot_root", (b"/tmp", b"/tmp")),
    ("fsopen", (b"tmpfs", 0)),
    ("open_tree", (-100, b"/tmp", 0)),
    ("ptrace", (0, 0, 0, 0)),  # PTRACE_TRACEME
    ("bpf", (0, None, 0)),
    ("perf_event_open", (None, 0, -1, -1, 0)),
    ("userfaultfd", (0,)),
    ("io_uring_setup", (1, None)),
    ("init_module", (None, 0, b"")),
    ("finit_module", (-1, b"", 0)),
    ("delete_module", (b"loop", 0)),
    ("kexec_load", (0, 0, None, 0)),
    ("swapon", (b"/tmp/swap", 0)),
    ("reboot", (0, 0, 0, None)),
    ("clone3", (None, 0)),
]
PROBE = """
import ctypes, errno, json, sys
libc = ctypes.CDLL(None, use_errno=True)
said = {}
for name, number, args in json.loads(sys.argv[1]):
    ctypes.set_errno(0)
    args = [ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_long(a or 0)
            for a in args]
    result = libc.syscall(ctypes.c_long(number), *args)
    said[name] = "ok" if result >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    if name == "clone" and result == 0:  # a child in a new user namespace: gone at once
        libc.syscall(60, 0)
print(json.dumps(said))
"""


def probe_calls() -> str:
    """The calls with this machine's system call numbers, as the probe's argument."""
    arch = pyseccomp.Arch.NATIVE
    calls = [
        (
            name,
            pyseccomp.resolve_syscall(arch, name),
            [a.decode() if isinstance(a, bytes) else a for a in args],
        )
        for name, args in CALLS
    ]
    return json.dumps(calls)


def run_stage_script(tmp_path: Path, kind: str, stage: str, files: dict[str, str]) -> RunOutcome:
    limits = Limits(memory_mb=256, processes=64, output_bytes=50_000, disk_mb=64, file_size_mb=16)
    spec = make_spec(
        tmp_path, upload=files, stage_specs=stages(timeout=30.0, **{stage: "sh go.sh"}),
        limits=limits,
    )  # fmt: skip
    outcome = run_submission(spec, sandbox=SandboxInfo(kind, f"{kind} (test)"))  # type: ignore[arg-type]
    assert not sandbox_processes(), "a sandbox process survived its stage"
    return outcome


@pytest.mark.parametrize("stage", ["build", "run"])  # the student's cell and the harness's
@pytest.mark.parametrize("kind", NAMESPACED)
def test_kernel_attack_surface_is_refused_on_every_namespace_sandbox(
    tmp_path: Path, kind: str, stage: str
) -> None:
    go = f"python3 probe.py '{probe_calls()}'\n"
    outcome = run_stage_script(tmp_path, kind, stage, {"go.sh": go, "probe.py": PROBE})
    said = json.loads(text(outcome, f"stage_{stage}_output"))
    assert said["getpid"] == "ok", said  # the probe ran its calls
    assert said.pop("clone3") == "ENOSYS"  # the C library falls back to clone
    refused = {name: result for name, result in said.items() if name != "getpid"}
    assert refused == dict.fromkeys(refused, "EPERM"), said
    assert syscall_filter(kind)[0]  # type: ignore[arg-type]
    assert "Seccomp:\t2" in status_of(tmp_path / "status", kind, stage)


def status_of(tmp_path: Path, kind: str, stage: str) -> str:
    """The stage's /proc/self/status (that the filter is there, not only its effects)."""
    outcome = run_stage_script(tmp_path, kind, stage, {"go.sh": "cat /proc/self/status\n"})
    return text(outcome, f"stage_{stage}_output")


LEAVE_KEY = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
add_key = int(sys.argv[1])
serial = libc.syscall(ctypes.c_long(add_key), b"user", sys.argv[2].encode(), b"the answer", 10,
                      ctypes.c_long(-4))  # the user keyring, which outlives the stage
print(os.getuid(), serial if serial >= 0 else errno.errorcode[ctypes.get_errno()])
"""
FIND_KEY = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
keyctl, name, serial = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
def said(result):
    return "found" if result >= 0 else errno.errorcode[ctypes.get_errno()]
found = libc.syscall(ctypes.c_long(keyctl), 10, ctypes.c_long(-4), b"user", name, 0)  # SEARCH
buffer = ctypes.create_string_buffer(64)
read = libc.syscall(ctypes.c_long(keyctl), 11, ctypes.c_long(serial), buffer, 64)  # READ
print(os.getuid(), said(found), said(read), buffer.value.decode(errors="replace"))
"""


@pytest.mark.parametrize("kind", NAMESPACED)
def test_a_key_one_submission_leaves_cannot_be_read_by_the_next(tmp_path: Path, kind: str) -> None:
    arch = pyseccomp.Arch.NATIVE
    add_key, keyctl = (pyseccomp.resolve_syscall(arch, n) for n in ("add_key", "keyctl"))
    name = f"grader-collude-{uuid.uuid4().hex[:8]}"
    first = run_stage_script(
        tmp_path / "first", kind, "run",
        {"go.sh": f"python3 leave.py {add_key} {name}\n", "leave.py": LEAVE_KEY},
    )  # fmt: skip
    first_uid, left = text(first, "stage_run_output").split()
    assert first_uid.isdigit() and left == "EPERM"  # it ran; the filter refuses the keyring
    serial = "0"
    second = run_stage_script(
        tmp_path / "second", kind, "run",
        {"go.sh": f"python3 find.py {keyctl} {name} {serial}\n", "find.py": FIND_KEY},
    )  # fmt: skip
    second_uid, found, read, value = [*text(second, "stage_run_output").split(), ""][:4]
    assert second_uid != first_uid  # the next submission never gets the last one's uid
    assert found != "found" and read != "found" and "answer" not in value
    assert found == read == "EPERM"


ORDINARY = {
    "go.sh": "set -e\ngcc -O1 -pthread -o threads threads.c\n./threads\n"
    "python3 work.py\npython3 -B -m pytest -q -p no:cacheprovider test_ok.py\n",
    "threads.c": textwrap.dedent("""\
        #include <pthread.h>
        #include <stdio.h>
        static void *work(void *arg) { return arg; }
        int main(void) {
            pthread_t t[4];
            for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, NULL);
            for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
            puts("threads ok");
            return 0;
        }
    """),
    "work.py": textwrap.dedent("""\
        import multiprocessing, subprocess, threading
        if __name__ == "__main__":
            thread = threading.Thread(target=print, args=("thread ok",))
            thread.start()
            thread.join()  # before the pool forks: a fork while it prints could deadlock
            with multiprocessing.Pool(2) as pool:
                print("pool", sum(pool.map(abs, [-1, -2, -3])))
            print(subprocess.run(["echo", "subprocess ok"], capture_output=True, text=True).stdout.strip())
    """),  # noqa: E501
    "test_ok.py": "def test_ok():\n    assert True\n",
}


@pytest.mark.parametrize("kind", NAMESPACED)
def test_compilers_threads_processes_and_pytest_still_run(tmp_path: Path, kind: str) -> None:
    outcome = run_stage_script(tmp_path, kind, "run", ORDINARY)
    out = text(outcome, "stage_run_output")
    assert outcome.status == StatusCode.OK, text(outcome, "stage_run_error")
    for line in ("threads ok", "thread ok", "pool 6", "subprocess ok", "1 passed"):
        assert line in out, out


def test_doctor_names_the_filter_and_the_kind_without_one() -> None:
    assert bpf_program() and missing() is None
    for kind in ("bubblewrap", "unshare"):
        holds, what = syscall_filter(kind)  # type: ignore[arg-type]
        assert holds and "keyrings" in what
    holds, what = syscall_filter("rlimits")
    assert not holds and what.startswith("NO SYSCALL FILTER")


def test_without_pyseccomp_stages_still_run_and_doctor_warns(tmp_path: Path) -> None:
    if "bubblewrap" not in NAMESPACED:
        pytest.skip("bubblewrap cannot run here")
    script = textwrap.dedent(f"""\
        import sys
        sys.modules["pyseccomp"] = None  # as if it were not installed
        from pathlib import Path
        from runner_kit import make_spec, stages, text
        from grader.engine.runner import run_submission
        from grader.engine.sandbox import SandboxInfo
        from grader.engine.sandbox.detect import syscall_filter
        print(*syscall_filter("bubblewrap"))
        spec = make_spec(Path({str(tmp_path)!r}), stage_specs=stages(run="grep Seccomp: /proc/self/status"))
        outcome = run_submission(spec, sandbox=SandboxInfo("bubblewrap", "test"))
        print(outcome.status, text(outcome, "stage_run_output"))
    """)  # noqa: E501
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'tests' / 'engine'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "False NO SYSCALL FILTER: pyseccomp/libseccomp cannot be loaded" in done.stdout
    assert "Seccomp:\t0" in done.stdout  # the stage ran, unfiltered
