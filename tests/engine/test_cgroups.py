"""Per-stage cgroups: where they are made, what is written, and the kernel enforcing them.

The v2 cases write into a folder laid out like a delegated cgroup2 hierarchy under
tmp_path (this machine mounts cgroup v1 writable, with no v2 controllers): they check the
files the engine writes, not the kernel. The v1 cases run real processes in real cgroups.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from runner_kit import NAMESPACED, needs_root, needs_sandbox
from test_sandbox import make_cell

from grader.engine.sandbox import cgroups, run_stage, sandbox_uid, stage_env
from grader.engine.sandbox.cgroups import (
    PARENT,
    Group,
    Hierarchy,
    find_hierarchies,
    prepare_engine,
    stage_group,
    stage_memory_bytes,
    stage_pids,
)
from grader.engine.sandbox.layout import WORK_FILES
from grader.engine.sandbox.procs import processes_of
from grader.engine.sandbox.tmpfs import BASE, is_live, mount_tmpfs, unmount
from grader.engine.spec import Cancel, Limits

LIMITS = Limits(memory_mb=32, processes=16, disk_mb=16)


def mountinfo(*lines: tuple[str, str, str, str]) -> str:
    """mountinfo lines: (mount root, mount point, fstype, super options)."""
    return "".join(
        f"{n} 1 0:{n} {root} {point} rw,relatime - {kind} {kind} {options}\n"
        for n, (root, point, kind, options) in enumerate(lines, start=30)
    )


V1_CGROUP = (
    "8:pids:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n"  # as on this machine
)


def test_v1_groups_go_under_the_engines_own_cgroup_of_each_controller(tmp_path: Path) -> None:
    for name in ("memory/process_api/abc", "pids", "cpu"):
        (tmp_path / name).mkdir(parents=True)
    info = mountinfo(
        ("/", f"{tmp_path}/cpu", "cgroup", "rw,cpu"),
        ("/", f"{tmp_path}/memory", "cgroup", "rw,memory"),
        ("/", f"{tmp_path}/pids", "cgroup", "rw,pids"),
        ("/", f"{tmp_path}/unified", "cgroup2", "rw"),
    )
    support = find_hierarchies(V1_CGROUP, info)
    assert support.missing == {}
    assert set(support.hierarchies) == {
        Hierarchy(1, tmp_path / "memory/process_api/abc", ("memory",)),
        Hierarchy(1, tmp_path / "pids", ("pids",)),
        Hierarchy(1, tmp_path / "cpu", ("cpu",)),
    }


def test_a_controller_mounted_nowhere_is_missing_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "memory/process_api/abc").mkdir(parents=True)
    info = mountinfo(("/", f"{tmp_path}/memory", "cgroup", "rw,memory"))
    support = find_hierarchies(V1_CGROUP, info)
    assert support.controllers == ("memory",)
    assert set(support.missing) == {"pids", "cpu"}
    assert "no pids controller is mounted" in support.missing["pids"]


def v2_tree(tmp_path: Path, offered: str) -> tuple[str, str, Path]:
    own = tmp_path / "cg2/user.slice/grader.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(offered + "\n")
    info = mountinfo(("/", f"{tmp_path}/cg2", "cgroup2", "rw,nsdelegate"))
    return "0::/user.slice/grader.service\n", info, own


def test_v2_uses_the_controllers_delegated_to_the_engines_cgroup(tmp_path: Path) -> None:
    cgroup, info, own = v2_tree(tmp_path, "cpuset cpu io memory pids")
    support = find_hierarchies(cgroup, info)
    assert support.hierarchies == (Hierarchy(2, own, ("memory", "pids", "cpu")),)
    assert support.missing == {}


def test_v2_names_a_controller_that_is_not_delegated(tmp_path: Path) -> None:
    cgroup, info, own = v2_tree(tmp_path, "memory")
    support = find_hierarchies(cgroup, info)
    assert support.hierarchies == (Hierarchy(2, own, ("memory",)),)
    assert support.missing["pids"] == f"the pids controller is not delegated to {own} (cgroup v2)"


def test_v2_files_written_for_the_engine_and_a_stage(tmp_path: Path) -> None:
    # a folder standing in for cgroupfs: the kernel is not involved (see the module docstring)
    cgroup, info, own = v2_tree(tmp_path, "cpu memory pids")
    (hierarchy,) = find_hierarchies(cgroup, info).hierarchies
    engine = prepare_engine(hierarchy, "123-abcdefgh")
    assert engine == own / PARENT / "123-abcdefgh"
    for place in (own, own / PARENT, engine):
        assert (place / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    weight = min(100 * (os.cpu_count() or 1), 10_000)
    assert (engine / "cpu.weight").read_text() == str(weight)
    group = Group.make([(hierarchy, engine)], LIMITS, tmp_path / "marker")
    ((_, stage),) = group.folders
    assert stage.parent == engine and stage.name.startswith("stage-")
    assert (stage / "memory.max").read_text() == str(stage_memory_bytes(LIMITS))
    assert (stage / "pids.max").read_text() == str(stage_pids(LIMITS))
    assert not (stage / "memory.limit_in_bytes").exists()


def test_the_join_prefix_writes_its_pid_everywhere_before_running_the_command(
    tmp_path: Path,
) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    hierarchy = Hierarchy(1, tmp_path, ("pids",))
    group = Group([(hierarchy, folder) for folder in folders], tmp_path / "joined")
    assert not group.joined()
    done = subprocess.run([*group.join_prefix(), "sh", "-c", "echo $$"], capture_output=True)
    pid = done.stdout.decode().strip()
    assert done.returncode == 0 and pid.isdigit()
    for file in (folders[0] / "cgroup.procs", folders[1] / "cgroup.procs", group.marker):
        assert file.read_text() == f"{pid}\n"  # the same process: the wrapper exec'd the command
    assert group.joined()


def test_a_stage_that_cannot_join_never_runs_its_command(tmp_path: Path) -> None:
    hierarchy = Hierarchy(1, tmp_path, ("pids",))
    group = Group([(hierarchy, tmp_path / "gone")], tmp_path / "joined")
    done = subprocess.run([*group.join_prefix(), "touch", str(tmp_path / "ran")])
    assert done.returncode == 125
    assert not (tmp_path / "ran").exists() and not group.joined()


def test_the_memory_limit_leaves_room_for_the_tmpfs_and_kernel_objects() -> None:
    mb = 1024 * 1024
    # memory, kernel objects, /tmp and /dev/shm, the submission's area and its inodes
    area = 16 * mb + WORK_FILES * cgroups.INODE_BYTES
    assert stage_memory_bytes(LIMITS) == (32 + cgroups.KERNEL_MB + 16 + 16) * mb + area
    assert stage_pids(LIMITS) == 16 + cgroups.PIDS_EXTRA


# The real kernel (root, cgroup v1 or v2 writable) -------------------------------------------

needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0 or bool(cgroups.missing()),
    reason="needs root and writable memory, pids and cpu cgroups (as CI has)",
)


def python(group: Group, code: str, **kw: object) -> subprocess.CompletedProcess[str]:
    argv = [*group.join_prefix(), sys.executable, "-c", code]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload, no-any-return]


@needs_root
@needs_cgroups
def test_memory_past_the_groups_limit_is_an_oom_kill_the_group_reports() -> None:
    code = """
chunks = []
while True:
    chunks.append(b"x" * (8 << 20))
    print(len(chunks) * 8, flush=True)
"""
    with stage_group("bubblewrap", LIMITS) as group:
        assert group is not None
        done = python(group, code)
        assert group.oom_killed()
    assert done.returncode == -9
    reached = int(done.stdout.split()[-1]) << 20
    assert 32 << 20 < reached <= stage_memory_bytes(LIMITS)  # it ran, up to the limit


@needs_root
@needs_cgroups
def test_kernel_memory_counts_an_inode_flood_stops_at_the_groups_limit(tmp_path: Path) -> None:
    # a tmpfs allowing a million inodes: only the cgroup bounds what the flood costs
    flood = tmp_path / "flood"
    flood.mkdir()
    mount_tmpfs(flood, 1 << 30, 1_000_000)
    code = f"""
import os
for n in range(1_000_000):
    os.close(os.open("{flood}/f%d" % n, os.O_CREAT | os.O_WRONLY))
    if n % 1000 == 0:
        print(n, flush=True)
"""
    try:
        with stage_group("unshare", LIMITS) as group:
            assert group is not None
            done = python(group, code)
            assert group.oom_killed()
        assert done.returncode == -9
        assert 10_000 < int(done.stdout.split()[-1]) < 1_000_000  # files made, then the kill
    finally:
        unmount(flood)


@needs_root
@needs_cgroups
def test_forks_stop_at_pids_max() -> None:
    code = """
import os, time
children = []
try:
    while len(children) < 1000:
        pid = os.fork()
        if pid == 0:
            os.closerange(1, 3)  # the test reads our output to its end
            time.sleep(60)
            os._exit(0)
        children.append(pid)
except BlockingIOError:
    print("refused after", len(children))
"""
    with stage_group("bubblewrap", LIMITS) as group:
        assert group is not None
        done = python(group, code)
        assert group.pids()  # the sleeping children are still in the group
    assert "refused after" in done.stdout, done.stderr
    made = int(done.stdout.split()[-1])
    # the joining shell exec'd into python: python and its children fill pids.max
    assert made == stage_pids(LIMITS) - 1


@needs_root
@needs_cgroups
def test_a_dead_engines_groups_are_killed_and_removed() -> None:
    ready = cgroups._ready()
    name = f"{os.getpid()}-deadengine"
    assert not (BASE / f"{name}.lock").exists() and not is_live(name)
    stages = []
    for hierarchy, parent in ready.parents:
        stage = parent.parent / name / "stage-left"
        stage.mkdir(parents=True)
        stages.append((hierarchy, stage))
    left = Group(stages, BASE / "unused-marker")
    sleeper = subprocess.Popen([*left.join_prefix(), "sleep", "600"])
    try:
        while not left.pids():
            time.sleep(0.01)
        for hierarchy, _ in ready.parents:
            cgroups.sweep(hierarchy, is_live)
        assert sleeper.wait(timeout=10) == -9
        for _, stage in stages:
            assert not stage.parent.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        (BASE / "unused-marker").unlink(missing_ok=True)


@needs_root
@needs_cgroups
def test_a_dead_engine_swept_by_another_engine_first_is_skipped() -> None:
    # two engines starting together both find the dead one; the second must not fail
    # (it did: an engine's first stage ended as status 20 with "No such file or directory")
    ready = cgroups._ready()
    name = f"{os.getpid()}-sweptaway"
    for hierarchy, parent in ready.parents:
        (parent.parent / name / "stage-left").mkdir(parents=True)

        def swept_by_another(engine: str, hierarchy: Hierarchy = hierarchy) -> bool:
            if engine == name:  # listed, then removed by the other engine's sweep
                folder = hierarchy.own / PARENT / name
                (folder / "stage-left").rmdir()
                folder.rmdir()
                return False
            return is_live(engine)

        cgroups.sweep(hierarchy, swept_by_another)
        assert not (parent.parent / name).exists()


def test_an_engines_slots_starting_together_make_one_engine_folder(tmp_path: Path) -> None:
    code = """
import threading
from grader.engine.sandbox import cgroups, tmpfs
seen, start = [], threading.Barrier(8)
def first_stage():
    start.wait()
    seen.append((tmpfs.engine_folder(), cgroups._ready().marker_folder))
threads = [threading.Thread(target=first_stage) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(set(seen)), len(seen))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split() == ["1", "8"], done.stdout + done.stderr


@needs_sandbox
@pytest.mark.sandbox
@needs_cgroups
@pytest.mark.parametrize("kind", NAMESPACED)
def test_every_process_of_a_stage_is_in_its_cgroups(tmp_path: Path, kind: str) -> None:
    with sandbox_uid() as uid:
        assert uid is not None
        cell = make_cell(tmp_path, kind, uid=uid)
        cancel = Cancel()
        out = cell.streams / "out"
        ended: list[object] = []
        command = "sleep 600 & sleep 600 & touch $HOME/started; wait"
        starter: list[int] = []

        def stage() -> None:
            starter.append(threading.get_native_id())
            env, err = stage_env(cell, {}), cell.streams / "err"
            exit = run_stage(
                cell, command, timeout=60, env=env, stdout=out, stderr=err, cancel=cancel
            )
            ended.append(exit)

        thread = threading.Thread(target=stage)
        thread.start()
        try:
            while not (cell.home / "started").exists() and thread.is_alive():
                time.sleep(0.01)
            pids = processes_of(uid)
            assert len(pids) >= 3, pids  # the shell and both sleeps
            for pid in pids:
                lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                paths = {line.split(":")[1]: line.split(":")[2] for line in lines}
                for name in ("memory", "pids", "cpu"):
                    assert f"/{PARENT}/" in paths[name] and "/stage-" in paths[name], paths
            # the thread that started it (under bubblewrap: from inside them) is back out
            assert "/stage-" not in Path(f"/proc/self/task/{starter[0]}/cgroup").read_text()
        finally:
            cancel.set()
            thread.join(timeout=30)
    assert ended and getattr(ended[0], "cancelled", False)


def thread_cgroups() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/cgroup").read_text()


@needs_root
@needs_cgroups
def test_a_thread_steps_into_a_stage_group_and_back_whatever_the_block_raises() -> None:
    if not cgroups.threads_may_enter():
        pytest.skip("cgroup v2: threads of one process stay together")
    before = thread_cgroups()
    started: list[subprocess.Popen[bytes]] = []

    def start_inside(group: Group) -> None:
        with group.entered():
            names = {folder.name for _, folder in group.folders}
            assert {line.rsplit("/", 1)[-1] for line in thread_cgroups().split()} >= names
            started.append(subprocess.Popen(["sleep", "600"]))  # born inside: not moved
            raise RuntimeError("the block failed")

    with stage_group("bubblewrap", LIMITS) as group:
        assert group is not None and group.threads_may_enter()
        with pytest.raises(RuntimeError, match="the block failed"):
            start_inside(group)
        (born,) = started
        try:
            assert thread_cgroups() == before
            assert group.pids() == [born.pid]  # not the engine: only its thread went in
        finally:
            born.kill()
            born.wait()


def test_doctor_says_which_guarantee_is_weaker_and_why(tmp_path: Path) -> None:
    nothing = cgroups.Ready((), dict.fromkeys(cgroups.CONTROLLERS, "the engine is not root"), None)
    holds, what = cgroups.describe("bubblewrap", nothing)
    assert not holds and what.startswith("NO CGROUPS: memory is only polled")
    assert "processes are only capped per uid" in what and "CPU is shared per thread" in what
    assert "(memory: the engine is not root;" in what
    memory_only = Hierarchy(1, tmp_path, ("memory",))
    partial = cgroups.Ready(
        ((memory_only, tmp_path),), {"pids": "no pids here", "cpu": "no cpu here"}, tmp_path
    )
    holds, what = cgroups.describe("unshare", partial)
    assert not holds and what.startswith("cgroup per stage for memory with kernel memory only;")
    assert "memory is only polled" not in what and "pids: no pids here" in what
    holds, what = cgroups.describe("rlimits", partial)
    assert not holds and what.startswith("NO CGROUPS without namespaces")


@needs_cgroups
def test_doctor_names_the_cgroups_this_machine_enforces() -> None:
    from grader.engine.sandbox.detect import kernel_limits

    holds, what = kernel_limits("bubblewrap")
    assert holds, what
    assert "memory with kernel memory, processes, an equal CPU share" in what


def test_the_rlimits_fallback_gets_no_cgroup() -> None:
    with stage_group("rlimits", LIMITS) as group:
        assert group is None


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.005)
    return True


@needs_root
@needs_cgroups
def test_stage_groups_are_made_ahead_per_limits_and_removed_by_their_thread() -> None:
    ready, ahead = cgroups._ready(), cgroups._Ahead()
    try:
        assert ahead.take(ready, LIMITS) is None  # nothing yet: the stage makes its own
        ahead.refill()
        assert wait_for(lambda: LIMITS in ahead.ready)
        made = ahead.ready[LIMITS]
        folders = [folder for _, folder in made.folders]
        assert all((folder / "pids.max").read_text().strip() == str(stage_pids(LIMITS))
                   for folder in folders if (folder / "pids.max").exists())  # fmt: skip
        assert ahead.take(ready, LIMITS) is made and LIMITS not in ahead.ready
        ahead.refill()  # the next one, for the next stage
        assert wait_for(lambda: LIMITS in ahead.ready)
        assert ahead.ready[LIMITS] is not made
        assert made.kill()
        ahead.discard(made)  # emptied: its folders go behind the stages
        assert wait_for(lambda: not any(folder.exists() for folder in folders))
        # only the last AHEAD_LIMITS sets of limits are kept ready
        others = [Limits(memory_mb=32 + n, processes=16, disk_mb=16) for n in range(1, 6)]
        for limits in others:
            ahead.take(ready, limits)
            ahead.refill()
        assert wait_for(lambda: set(ahead.ready) == set(others[-cgroups.AHEAD_LIMITS :]))
    finally:
        kept = [folder for group in ahead.ready.values() for _, folder in group.folders]
        ahead.close()
    assert kept and not any(folder.exists() for folder in kept)


@needs_root
@needs_cgroups
def test_a_forked_engine_forgets_the_groups_its_parent_made_ahead() -> None:
    with stage_group("bubblewrap", LIMITS):
        pass
    cgroups.refill_ahead()
    assert wait_for(lambda: LIMITS in cgroups._AHEAD.ready)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through the pipe)
        os.write(write, b"%d" % len(cgroups._AHEAD.ready))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        assert answer.read() == b"0"
    os.waitpid(pid, 0)
    assert LIMITS in cgroups._AHEAD.ready  # still the parent's
