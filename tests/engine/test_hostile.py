"""Hostile submissions: each gets the right status, leaves nothing running, harms nothing.

Every case runs a real submission through ``run_submission`` in the real sandbox with
small limits and short timeouts, then checks that no sandbox process survives and that
the next ordinary submission is still graded correctly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from runner_kit import (
    DEFAULT_KIND,
    KINDS_HERE,
    NAMESPACED,
    PYTEST_RUN,
    REPO,
    SMALL,
    make_spec,
    needs_sandbox,
    processes_with,
    report,
    sandbox_processes,
    stages,
    text,
)

from grader.api.models import StatusCode
from grader.engine.runner import run_submission
from grader.engine.sandbox import SandboxInfo, behind, cgroups
from grader.engine.sandbox.layout import (
    SHM_FILES,
    TMP_FILES,
    WORK_FILES,
    adopt_ignored_signals,
    ignoring_signals,
)
from grader.engine.sandbox.tmpfs import BASE
from grader.engine.spec import RunOutcome

pytestmark = [pytest.mark.sandbox, needs_sandbox]

TESTS = """
from solution import add

def test_adds():
    assert add(2, 3) == 5

def test_adds_negative():
    assert add(-2, -3) == -5
"""
CONFTEST = "import os, sys\nsys.path.append(os.environ['SE_PATH_WORKSPACE'])\n"
PROJECT = {".sphere-engine/tests/test_add.py": TESTS, ".sphere-engine/tests/conftest.py": CONFTEST}
GOOD = "def add(a, b):\n    return a + b\n"
KINDS = KINDS_HERE


def sandbox(kind: str) -> SandboxInfo:
    return SandboxInfo(kind, f"{kind} (test)")  # type: ignore[arg-type]


def hostile(
    tmp_path: Path, script: str, *, timeout: float = 2.0, kind: str = DEFAULT_KIND, **kw: object
) -> RunOutcome:
    """Run ``script`` (the student's hostile.py or hostile.sh) as the run stage."""
    name = "hostile.py" if script.lstrip().startswith(("import", "from", "#py")) else "hostile.sh"
    command = f"python3 {name}" if name.endswith(".py") else f"sh {name}"
    spec = make_spec(
        tmp_path, upload={name: script}, stage_specs=stages(timeout=timeout, run=command), **kw
    )  # type: ignore[arg-type]
    outcome = run_submission(spec, sandbox=sandbox(kind))
    assert not sandbox_processes(), "a sandbox process survived its stage"
    return outcome


def assert_next_submission_is_graded(tmp_path: Path, kind: str = DEFAULT_KIND) -> None:
    name = f"next-{uuid.uuid4().hex[:6]}"
    if kind == "rlimits":
        # Without a mount namespace the sandbox uid cannot reach a Python under /root
        # (this machine's venv): the next submission writes its JUnit XML by hand.
        xml = '<testsuite><testcase name="test_a"/><testcase name="test_b"/></testsuite>'
        run, project = f"echo '{xml}' > \"$SE_PATH_UNIT_TESTS_REPORT\"", {}
    else:
        run, project = PYTEST_RUN, PROJECT
    spec = make_spec(
        tmp_path,
        name=name,
        project=project,
        upload={"solution.py": GOOD},
        stage_specs=stages(timeout=10, run=run, test="se_utils_cli evaluate"),
        read_only=(".sphere-engine",),
    )
    outcome = run_submission(spec, sandbox=sandbox(kind))
    assert (outcome.status, outcome.score) == (StatusCode.OK, 100.0), text(outcome, "debug_log")
    assert len(report(outcome)) == 2


@pytest.fixture
def traversable(tmp_path: Path) -> Iterator[Path]:
    """Without namespaces the sandbox uid walks the host path: open tmp_path's ancestors."""
    changed = []
    for folder in [tmp_path, *tmp_path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            changed.append((folder, mode))
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    yield tmp_path
    for folder, mode in changed:
        folder.chmod(stat.S_IMODE(mode))


# Processes and time -------------------------------------------------------------------------


FORK_BOMB = """import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


@pytest.mark.parametrize("kind", NAMESPACED)
def test_fork_bomb_hits_the_process_limit_and_times_out(tmp_path: Path, kind: str) -> None:
    outcome = hostile(tmp_path, FORK_BOMB, timeout=1.5, kind=kind)
    assert outcome.status == StatusCode.TIME_LIMIT
    assert next(s for s in outcome.stages if s.name == "run").time < 3.0
    assert_next_submission_is_graded(tmp_path, kind)


def test_infinite_loop_is_time_limit(tmp_path: Path) -> None:
    outcome = hostile(tmp_path, "while :; do :; done", timeout=1.0)
    assert outcome.status == StatusCode.TIME_LIMIT
    assert "killed after its 1 s timeout" in text(outcome, "debug_log")
    assert_next_submission_is_graded(tmp_path)


def test_sleeping_forever_ignoring_sigterm_is_killed_at_the_timeout(tmp_path: Path) -> None:
    outcome = hostile(tmp_path, "trap '' TERM INT HUP; sleep 1000 & wait; sleep 1000", timeout=1.0)
    assert outcome.status == StatusCode.TIME_LIMIT
    assert next(s for s in outcome.stages if s.name == "run").time < 2.5


@pytest.mark.parametrize("kind", KINDS)
def test_daemon_left_behind_does_not_survive_the_stage(traversable: Path, kind: str) -> None:
    marker = f"daemon-{uuid.uuid4().hex}"
    script = f"""import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("python3", ["python3", "-c", "import time; time.sleep(1000)", "{marker}"])
    os._exit(0)
time.sleep(0.2)
print("parent done")
"""
    outcome = hostile(traversable, script, timeout=5.0, kind=kind)
    assert outcome.status == StatusCode.OK
    assert text(outcome, "stage_run_output") == "parent done\n"
    assert not processes_with(marker)
    assert_next_submission_is_graded(traversable, kind)


def test_killing_the_sandbox_init_is_refused(tmp_path: Path) -> None:
    outcome = hostile(tmp_path, "kill -9 1; kill -TERM 1; echo still here")
    assert outcome.status == StatusCode.OK
    assert text(outcome, "stage_run_output") == "still here\n"


def test_killing_its_own_stage_shell_is_a_runtime_error(tmp_path: Path) -> None:
    outcome = hostile(tmp_path, "kill -9 $PPID; sleep 1; echo survived")
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 9)
    assert "survived" not in text(outcome, "stage_run_output")
    assert "memory" not in text(outcome, "debug_log")


def test_killing_every_process_it_can_is_a_runtime_error(tmp_path: Path) -> None:
    outcome = hostile(tmp_path, "sleep 100 & kill -9 -1; sleep 5")
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 9)
    assert "memory" not in text(outcome, "debug_log")
    assert_next_submission_is_graded(tmp_path)


def test_segfault_is_a_runtime_error_with_signal_11(tmp_path: Path) -> None:
    outcome = hostile(tmp_path, "import ctypes\nctypes.string_at(0)\n")
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 11)


# Memory, output, disk -------------------------------------------------------------------------


MEMORY_BOMB = """import time
hoard = []
while True:
    hoard.append(b"x" * (8 * 2**20))
"""


@pytest.mark.parametrize("kind", KINDS)
def test_memory_bomb_is_killed_with_signal_9_and_says_why(traversable: Path, kind: str) -> None:
    outcome = hostile(traversable, MEMORY_BOMB, timeout=10.0, kind=kind)
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 9)
    assert "memory limit of 128 MB exceeded" in text(outcome, "debug_log")
    assert 128 * 1024 <= outcome.memory < 1024 * 1024
    assert_next_submission_is_graded(traversable, kind)


FORKED_WORKERS = """import os, time
held = bytearray(60 << 20)
held[::4096] = b"h" * len(held[::4096])  # 60 MB resident, then four workers share it
workers = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        time.sleep(1.0)  # copy-on-write: nothing of it is copied
        os._exit(0)
    workers.append(pid)
for pid in workers:
    os.waitpid(pid, 0)
print("workers done", len(held) >> 20)
"""


@pytest.mark.skipif(bool(cgroups.missing()), reason="needs the memory cgroup (as CI has)")
@pytest.mark.parametrize("kind", NAMESPACED)
def test_forked_workers_sharing_memory_count_it_once(tmp_path: Path, kind: str) -> None:
    # 5 processes x 60 MB would be 300 MB summed per process, against a 128 MB limit
    outcome = hostile(tmp_path, FORKED_WORKERS, timeout=20.0, kind=kind)
    assert text(outcome, "stage_run_output") == "workers done 60\n", text(outcome, "debug_log")
    assert outcome.status != StatusCode.RUNTIME_ERROR
    assert 60 * 1024 <= outcome.memory < SMALL.memory_mb * 1024  # counted, once


def test_output_flood_is_truncated_with_a_marker(tmp_path: Path) -> None:
    flood = "head -c 3000000 /dev/zero | tr '\\0' x; head -c 3000000 /dev/zero | tr '\\0' y >&2"
    outcome = hostile(tmp_path, flood)
    assert outcome.status == StatusCode.OK
    for stream, letter in (("stage_run_output", "x"), ("stage_run_error", "y")):
        captured = text(outcome, stream)
        assert captured.startswith(letter * SMALL.output_bytes)
        assert captured.endswith(f"[output truncated: more than {SMALL.output_bytes} bytes]\n")
        assert len(captured) < SMALL.output_bytes + 100


def test_endless_output_is_truncated_and_times_out(tmp_path: Path) -> None:
    outcome = hostile(tmp_path, "yes", timeout=1.0)
    assert outcome.status == StatusCode.TIME_LIMIT
    assert len(text(outcome, "stage_run_output")) < SMALL.output_bytes + 100


@pytest.mark.parametrize("kind", NAMESPACED)
def test_disk_fill_in_the_workspace_stops_at_the_limit(tmp_path: Path, kind: str) -> None:
    fill = "i=0; while :; do head -c 2000000 /dev/zero > f$i; i=$((i+1)); done"
    outcome = hostile(tmp_path, fill, timeout=20.0, kind=kind)
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 9)
    used, _ = disk_in_use(outcome)
    # the kernel refused the byte past 16 MB (the submission's own capped tmpfs), and the
    # watcher saw the area full; the attack ran up to it
    assert 15 * 2**20 < used <= 16 * 2**20
    assert_next_submission_is_graded(tmp_path, kind)


@pytest.mark.parametrize("kind", NAMESPACED)
def test_a_disk_limit_memory_cannot_hold_puts_the_folders_on_the_host_disk(
    tmp_path: Path, kind: str
) -> None:
    memory_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    for disk_mb, on_disk in ((16, False), (memory_mb // 8 + 1, True)):
        name = f"disk{disk_mb}"
        spec = make_spec(
            tmp_path,
            name=name,
            upload={"hostile.sh": "echo mine > marker"},
            stage_specs=stages(run="sh hostile.sh"),
            limits=replace(SMALL, disk_mb=disk_mb),
        )
        outcome = run_submission(spec, sandbox=sandbox(kind))
        assert outcome.status == StatusCode.OK, text(outcome, "debug_log")
        said = "the submission's folders are on the host disk" in text(outcome, "debug_log")
        assert said == on_disk
        # on the host disk the folders stay for the engine's store to remove; a tmpfs area
        # is gone with its submission
        assert (spec.work_dir / "home" / "workspace" / "marker").exists() == on_disk


MANY_THEN_BIG = """import os
made = 0
while made < 50_000:  # empty files: no bytes, a slow walk for a watcher that walks
    os.close(os.open(f"e{made}", os.O_CREAT | os.O_WRONLY, 0o600))
    made += 1
print("empty files", made, flush=True)
i = 0
while True:
    try:
        with open(f"big{i}", "wb") as out:
            out.write(bytes(4_000_000))
    except OSError as exc:
        print("big files", i, exc.strerror, flush=True)
        break
    i += 1
while True:
    pass
"""


@pytest.mark.parametrize("kind", NAMESPACED)
def test_many_files_then_big_files_stop_at_the_byte_limit(tmp_path: Path, kind: str) -> None:
    outcome = hostile(tmp_path, MANY_THEN_BIG, timeout=30.0, kind=kind)
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 9)
    said = text(outcome, "stage_run_output")
    assert "empty files 50000" in said, said + text(outcome, "debug_log")  # the attack ran
    used, entries = disk_in_use(outcome)
    assert used <= 16 * 2**20 and entries >= 50_000
    assert_next_submission_is_graded(tmp_path, kind)


FILE_FLOOD = """import errno, os, time
made = 0
try:
    while made < 1_000_000:
        os.close(os.open(f"f{made}", os.O_CREAT | os.O_WRONLY, 0o600))
        made += 1
except OSError as exc:
    print(made, errno.errorcode[exc.errno], flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("kind", NAMESPACED)
def test_the_file_count_cap_holds_in_the_workspace(tmp_path: Path, kind: str) -> None:
    outcome = hostile(tmp_path, FILE_FLOOD, timeout=60.0, kind=kind)
    made, why = text(outcome, "stage_run_output").split()
    assert why == "ENOSPC"  # the kernel refused the file past the cap
    assert WORK_FILES - 200 <= int(made) < WORK_FILES  # less the project's own files
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 9)
    _, entries = disk_in_use(outcome)
    assert entries <= WORK_FILES
    assert_next_submission_is_graded(tmp_path, kind)


def disk_in_use(outcome: RunOutcome) -> tuple[int, int]:
    """Bytes and entries in use when the stage was killed at its disk limit (debug_log)."""
    log = text(outcome, "debug_log")
    found = re.search(r"disk limit of 16 MB exceeded \(([\d.]+) MB in (\d+) files", log)
    assert found, log
    return int(float(found[1]) * 2**20), int(found[2])


@pytest.mark.parametrize("kind", NAMESPACED)
def test_signals_the_engine_ignores_are_not_the_stages(tmp_path: Path, kind: str) -> None:
    # an engine under nohup or cron ignores SIGHUP; ignored and blocked signals would pass
    # through every exec to the student's processes
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        outcome = hostile(tmp_path, "grep -E '^Sig(Ign|Blk)' /proc/self/status", kind=kind)
    finally:
        signal.signal(signal.SIGHUP, before)
    said = dict(line.split(":") for line in text(outcome, "stage_run_output").splitlines())
    assert {name: int(mask, 16) for name, mask in said.items()} == {"SigIgn": 0, "SigBlk": 0}


@pytest.mark.parametrize("kind", NAMESPACED)
def test_an_engine_that_adopts_its_ignored_signals_still_ignores_them_and_needs_no_env(
    tmp_path: Path, kind: str
) -> None:
    # what Engine.start does: SIG_IGN becomes a handler that does nothing, which an exec
    # resets, so the stage gets the default actions without ``env --default-signal``
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        adopt_ignored_signals()
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert not ignoring_signals()  # so stage_argv puts no ``env`` before the stage
        os.kill(os.getpid(), signal.SIGHUP)  # ignored still: this test goes on
        outcome = hostile(tmp_path, "grep -E '^Sig(Ign|Blk)' /proc/self/status", kind=kind)
    finally:
        signal.signal(signal.SIGHUP, before)
    said = dict(line.split(":") for line in text(outcome, "stage_run_output").splitlines())
    assert {name: int(mask, 16) for name, mask in said.items()} == {"SigIgn": 0, "SigBlk": 0}


def test_one_file_past_the_file_size_limit_is_a_runtime_error(tmp_path: Path) -> None:
    script = 'head -c 20000000 /dev/zero > big; s=$?; wc -c < big; exit "$s"'
    outcome = hostile(tmp_path, script)
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 25)  # SIGXFSZ
    assert int(text(outcome, "stage_run_output")) == SMALL.file_size_mb * 2**20


def test_private_tmp_is_capped(tmp_path: Path) -> None:
    # -x: /tmp's own file system (a grader installed under /tmp is bound in below it)
    fill = "for i in 1 2 3 4; do head -c 6000000 /dev/zero > /tmp/f$i; done; du -skx /tmp"
    outcome = hostile(tmp_path, fill)
    # OK: /tmp filled up before the watcher saw workspace + /tmp > 16 MB
    if outcome.status == StatusCode.OK:
        assert "No space left on device" in text(outcome, "stage_run_error")
        assert int(text(outcome, "stage_run_output").split()[0]) <= 16 * 1024
    else:
        assert "disk limit of 16 MB exceeded" in text(outcome, "debug_log")


# Network, files, environment ----------------------------------------------------------------


def test_no_network_not_even_the_hosts_loopback(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        script = f"""import socket
for address in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("10.0.0.1", 80)]:
    try:
        socket.create_connection(address, timeout=1).close()
        print("connected", address)
    except OSError as exc:
        print("blocked", address, type(exc).__name__)
"""
        outcome = hostile(tmp_path, script, timeout=10.0)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing waits in the listen queue
            server.accept()
    output = text(outcome, "stage_run_output")
    assert output.count("blocked") == 3 and "connected" not in output


@pytest.mark.parametrize("kind", NAMESPACED)
def test_host_files_and_other_submissions_are_invisible(tmp_path: Path, kind: str) -> None:
    other = tmp_path / "other" / "work" / "home" / "workspace"
    other.mkdir(parents=True)
    (other / "solution.py").write_text("SECRET-OTHER-SUBMISSION")
    engine_data = tmp_path / "engine-data"
    engine_data.mkdir()
    (engine_data / "engine.sqlite3").write_text("SECRET-ENGINE-DATA")
    targets = [
        "/etc/shadow",
        "/root/.bashrc",
        "/root/.gitconfig",
        str(other / "solution.py"),
        str(engine_data / "engine.sqlite3"),
        str(REPO / "pyproject.toml"),
        str(REPO / "sample_course" / "course.toml"),
        str(REPO / "grader" / "__init__.py"),
        "/proc/1/root/etc/shadow",
        "/proc/1/environ",
    ]
    script = "import sys\n" + "\n".join(
        f"""
try:
    print("READ", {path!r}, len(open({path!r}, "rb").read()))
except OSError as exc:
    print("denied", {path!r}, type(exc).__name__)
"""
        for path in targets
    )
    script += "\nimport os\nprint('root', sorted(os.listdir('/root')))\n"
    script += (
        "print('work', sorted(os.listdir('/work/main')) if os.path.isdir('/work/main') else [])\n"
    )
    outcome = hostile(tmp_path, script, kind=kind)
    output = text(outcome, "stage_run_output")
    assert "READ" not in output, output
    assert output.count("denied") == len(targets)
    assert "root ['.pyenv']" in output or "root []" in output
    assert "'grader'" not in output and "'sample_course'" not in output


HOST_PATHS = """
import json, sys
from pathlib import Path
from runner_kit import make_spec, stages, text
from grader.engine.runner import run_submission
from grader.engine.sandbox import SandboxInfo
# this process's arguments name the data folder, as `grader engine serve --data` does
data, kind = Path(sys.argv[2]), sys.argv[3]
run = "tr '\\\\0' ' ' </proc/1/cmdline; echo; echo MOUNTS; cat /proc/self/mountinfo"
spec = make_spec(data, project={"notes.txt": "x"}, stage_specs=stages(run=run))
outcome = run_submission(spec, sandbox=SandboxInfo(kind, "test"))
print(json.dumps([outcome.status, text(outcome, "stage_run_output")]))
"""


@pytest.mark.parametrize("kind", NAMESPACED)
def test_no_host_path_in_pid_1s_command_line_nor_in_mountinfo(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "engine-data-a1b2"
    data.mkdir()
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'tests' / 'engine'}", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-c", HOST_PATHS, "--data", str(data), kind]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    status, output = json.loads(done.stdout.splitlines()[-1])
    assert status == StatusCode.OK, output
    pid1, mounts = output.split("MOUNTS\n")
    assert pid1.strip() and "engine-data-a1b2" not in pid1 and "--data" not in pid1, pid1
    lines = mounts.splitlines()
    assert any(line.split()[4] == "/home/user" for line in lines), mounts  # it read them
    for line in lines:
        root, mount_point = line.split()[3:5]
        # the submission's folders are on a tmpfs of its own: a bind's source is named
        # within that file system, never by the engine's folders
        assert "engine-data-a1b2" not in root and "engine-data-a1b2" not in mount_point, line
        assert "grader-tmpfs" not in root, line


def test_the_checkout_is_invisible_even_through_the_editable_install(tmp_path: Path) -> None:
    script = """import os, sys
try:
    import grader.engine.runner as runner
    print(runner.__file__)
except ImportError:
    print("not importable")
print(sorted(os.listdir("/work/main")) if os.path.isdir("/work/main") else "no checkout")
"""
    output = text(hostile(tmp_path, script), "stage_run_output")
    # an editable install points at the checkout: hidden; a wheel install is site-packages
    assert str(REPO / "grader") not in output
    assert "pyproject.toml" not in output and "sample_course" not in output


def test_environment_holds_no_token_and_no_host_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", "tok-hostile-9c1e")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-hostile-77d2")
    script = "env; cat /proc/1/environ /proc/self/environ 2>/dev/null | tr '\\0' '\\n'"
    outcome = hostile(tmp_path, script)
    output = text(outcome, "stage_run_output")
    assert "tok-hostile-9c1e" not in output and "aws-hostile-77d2" not in output
    names = {line.split("=", 1)[0] for line in output.splitlines() if "=" in line}
    ours = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TMPDIR", "PWD", "OLDPWD"}
    ours |= {"PYTHONPATH", "PYTHONNOUSERSITE", "PYTEST_PLUGINS"}
    prefixes = ("SE_", "GRADER_HARNESS_")  # the platform's and the harness's (no secrets)
    assert {name for name in names if not name.startswith(prefixes)} <= ours
    assert "SE_PATH_WORKSPACE" in names


@pytest.mark.parametrize("kind", KINDS)
def test_read_only_instructor_tests_cannot_be_overwritten(traversable: Path, kind: str) -> None:
    attack = (
        "echo 'def test_adds(): pass' > .sphere-engine/tests/test_add.py; "
        "rm -rf .sphere-engine; mv .sphere-engine gone; chmod 777 .sphere-engine/tests; "
        "ln -sf /etc .sphere-engine/tests/x; true"
    )
    # (rlimits cannot reach this machine's pytest under /root: it shows the file instead)
    run = PYTEST_RUN if kind != "rlimits" else "cat .sphere-engine/tests/test_add.py"
    spec = make_spec(
        traversable,
        project=PROJECT,
        upload={"solution.py": "def add(a, b):\n    return 5\n", "attack.sh": attack},
        stage_specs=stages(
            timeout=10,
            build="sh attack.sh",
            run=run,
            test="se_utils_cli evaluate",
            post="cat .sphere-engine/tests/test_add.py; ls -a",  # the workspace at the end
        ),
        read_only=(".sphere-engine",),
    )
    outcome = run_submission(spec, sandbox=sandbox(kind))
    if kind == "rlimits":
        assert text(outcome, "stage_run_output") == TESTS
    else:
        assert (outcome.status, outcome.score) == (StatusCode.FAIL, 50.0), text(
            outcome, "debug_log"
        )
    at_the_end = text(outcome, "stage_post_output")
    assert at_the_end.startswith(TESTS), at_the_end
    assert "gone" not in at_the_end.removeprefix(TESTS).split()
    assert not sandbox_processes()


def test_shared_memory_works_for_multiprocessing_but_is_capped(tmp_path: Path) -> None:
    script = """import multiprocessing
lock = multiprocessing.Lock()
with lock:
    print("semaphore ok")
for i in range(100):
    with open(f"/dev/shm/fill{i}", "wb") as f:
        f.write(b"x" * 2**20)
"""
    outcome = hostile(tmp_path, script)
    assert "semaphore ok" in text(outcome, "stage_run_output")
    # 16 MB of disk_mb shared by the workspace, /tmp and /dev/shm: full or killed, never 100
    full = "No space left on device" in text(outcome, "stage_run_error")
    assert full or "disk limit of 16 MB exceeded" in text(outcome, "debug_log")


@pytest.mark.parametrize("kind", NAMESPACED)
def test_a_million_empty_files_in_tmp_stop_at_the_inode_cap(tmp_path: Path, kind: str) -> None:
    # empty files cost no bytes, only kernel memory no limit counts: the inode cap stops them
    script = """import errno, os
for folder in ("/tmp", "/dev/shm"):
    made = 0
    try:
        while made < 1_000_000:
            os.close(os.open(f"{folder}/f{made}", os.O_CREAT | os.O_WRONLY, 0o600))
            made += 1
    except OSError as exc:
        print(folder, made, errno.errorcode[exc.errno])
    else:
        print(folder, made, "no cap")
"""
    outcome = hostile(tmp_path, script, timeout=30.0, kind=kind)
    said = [line.split() for line in text(outcome, "stage_run_output").splitlines()]
    assert len(said) == 2, text(outcome, "stage_run_error") + text(outcome, "debug_log")
    for (folder, made, why), cap in zip(said, (TMP_FILES, SHM_FILES), strict=True):
        assert why == "ENOSPC", said  # the kernel refused the next file
        # the attack ran up to the cap (less the tmpfs's root and any folder made in it)
        assert cap - 64 <= int(made) < cap, (folder, made)
    assert behind.idle(10)  # a stage's /tmp is taken down off its path
    mounts = Path("/proc/self/mountinfo").read_text()
    ours = [line for line in mounts.splitlines() if f"{BASE}/{os.getpid()}-" in line]
    # bubblewrap's host tmpfs mounts are gone (the engine's /etc and /dev stay while it runs)
    kept = ("/etc-", "/dev-")
    assert all(any(name in line.split()[4] for name in kept) for line in ours), ours
    assert_next_submission_is_graded(tmp_path, kind)
