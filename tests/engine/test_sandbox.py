"""The sandbox on its own: detection, command lines, uids, and stages run for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from runner_kit import (
    DEFAULT_KIND,
    KINDS_HERE,
    NAMESPACED,
    REPO,
    SMALL,
    needs_root,
    needs_sandbox,
)

from grader.engine.sandbox import (
    HOME,
    SANDBOX_UID_BASE,
    SANDBOX_UIDS,
    Cell,
    StageExit,
    address_space_bytes,
    behind,
    cgroups,
    detect_sandbox,
    layout,
    netns,
    readable_paths,
    run_stage,
    sandbox_uid,
    stage_argv,
    stage_env,
    system_mounts,
    tmpfs,
)
from grader.engine.sandbox.detect import choose_sandbox
from grader.engine.sandbox.layout import SETUP_FILES, SHM_FILES, TMP_FILES
from grader.engine.sandbox.tmpfs import capped, sweep
from grader.engine.sandbox.uids import CURSOR, lock_folder, lock_path
from grader.engine.spec import Limits


def make_cell(
    tmp_path: Path, kind: str = DEFAULT_KIND, uid: int | None = None, **kw: object
) -> Cell:
    """A cell over empty folders (the runner's layout, without a project)."""
    folders = {name: tmp_path / name for name in ("home", "runtime", "streams", "toolkit", "etc")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    (folders["toolkit"] / "lib").mkdir(exist_ok=True)
    (folders["home"] / "workspace").mkdir(exist_ok=True)
    (folders["etc"] / "passwd").write_text(f"user:x:{uid}:{uid}::{HOME}:/bin/sh\n")
    (folders["etc"] / "group").write_text(f"user:x:{uid}:\n")
    if uid is not None:
        for name in ("home", "runtime"):
            os.chown(folders[name], uid, uid)
        os.chown(folders["home"] / "workspace", uid, uid)
    readable = (sys.prefix, sys.base_prefix)
    settings = {"limits": SMALL, "readable": readable, **kw}
    return Cell(kind, uid=uid, **folders, **settings)  # type: ignore[arg-type]


def run(cell: Cell, command: str, timeout: float = 5.0) -> tuple[StageExit, str, str]:
    out, err = cell.streams / "out", cell.streams / "err"
    exit = run_stage(
        cell, command, timeout=timeout, env=stage_env(cell, {}), stdout=out, stderr=err
    )
    return exit, out.read_text(), err.read_text()


# Detection ----------------------------------------------------------------------------------


@pytest.mark.skipif("bubblewrap" not in KINDS_HERE, reason="bubblewrap cannot run here")
def test_this_machine_gets_bubblewrap_without_warning() -> None:
    info = detect_sandbox()
    assert (info.kind, info.warning) == ("bubblewrap", None)
    assert "bubblewrap 0." in info.detail and "private uid" in info.detail
    assert detect_sandbox() is info  # probed once per process


def test_without_namespaces_the_fallback_warns_loudly_and_says_why() -> None:
    info = choose_sandbox(
        {"bubblewrap": "bwrap not found", "unshare": "needs root", "rlimits": None}
    )
    assert info.kind == "rlimits"
    assert info.warning is not None
    assert info.warning.startswith("STUDENT CODE RUNS WITHOUT ISOLATION")
    assert "bubblewrap: bwrap not found; unshare: needs root" in info.warning


def test_unshare_is_chosen_when_only_bubblewrap_fails() -> None:
    info = choose_sandbox({"bubblewrap": "exit 1: bwrap: No permissions", "unshare": None})
    assert (info.kind, info.warning) == ("unshare", None)


# Command lines -------------------------------------------------------------------------------


def test_readable_paths_keep_exact_existing_absolute_paths_only(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    paths = [str(tmp_path / "a" / "b"), str(tmp_path / "a"), "relative", "/", "/usr/lib", "/nope"]
    assert readable_paths(paths) == [str(tmp_path / "a")]


def test_bubblewrap_shows_the_python_prefixes_but_never_their_parents(tmp_path: Path) -> None:
    argv = stage_argv(make_cell(tmp_path, uid=SANDBOX_UID_BASE), "true", 5.0)
    binds = {argv[i + 2]: argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")}
    assert binds[sys.prefix] == sys.prefix and binds[sys.base_prefix] == sys.base_prefix
    for parent in [*Path(sys.prefix).parents, *Path(sys.base_prefix).parents]:
        assert str(parent) not in binds or str(parent) in ("/usr",)
    assert binds[HOME] == str(tmp_path / "home")
    assert not {"/root", "/home", "/etc", "/work", str(tmp_path)} & binds.keys()
    assert "--unshare-net" in argv and "--die-with-parent" in argv
    made = [i for i, a in enumerate(argv) if a == "--dir"]  # parents bwrap would make 0700
    assert made and all(argv[i - 2 : i] == ["--perms", "0755"] for i in made)
    assert "/root" in [argv[i + 1] for i in made] or not sys.base_prefix.startswith("/root/")


def test_network_projects_keep_the_network_and_dns_files(tmp_path: Path) -> None:
    argv = stage_argv(make_cell(tmp_path, network=True), "true", 5.0)
    assert "--unshare-net" not in argv
    if Path("/etc/resolv.conf").exists():
        assert "/etc/resolv.conf" in argv


def test_system_mounts_copy_this_hosts_merged_or_split_usr() -> None:
    mounts = {m.dest: m for m in system_mounts()}
    for path in ("/bin", "/lib"):
        if Path(path).is_symlink():
            assert (mounts[path].op, mounts[path].source) == ("symlink", str(Path(path).readlink()))
    assert "/etc/shadow" not in mounts and "/etc/passwd" not in mounts


def test_bubblewrap_options_worked_out_once_per_cell_get_each_stages_tmp(
    tmp_path: Path,
) -> None:
    cell = make_cell(tmp_path, "bubblewrap", uid=SANDBOX_UID_BASE + 5)
    stages = [replace(cell, tmp=tmp_path / "mounts" / name) for name in ("a", "b", "a")]
    options = [layout.bwrap_options(stage) for stage in stages]
    uncached = [layout._bwrap_options.__wrapped__(stage) for stage in stages]
    assert options == [list(each) for each in uncached]  # the same as worked out afresh
    binds = [[arg for arg in each if "/mounts/" in arg] for each in options]
    assert binds[0] == [f"{tmp_path}/mounts/a/tmp", f"{tmp_path}/mounts/a/shm"]
    assert binds[1] == [f"{tmp_path}/mounts/b/tmp", f"{tmp_path}/mounts/b/shm"]
    assert not any("grader-stage-tmp" in arg for each in options for arg in each)


def test_stage_limits_reach_prlimit_and_the_uid_reaches_setpriv(tmp_path: Path) -> None:
    limits = Limits(memory_mb=100, processes=7, open_files=33, file_size_mb=2)
    argv = stage_argv(
        make_cell(tmp_path, "rlimits", uid=SANDBOX_UID_BASE + 5, limits=limits), "x", 2.5
    )
    assert f"--reuid={SANDBOX_UID_BASE + 5}" in argv and "--no-new-privs" in argv
    assert {"--nproc=7", "--nofile=33", f"--fsize={2 * 2**20}", "--cpu=4", "--core=0"} <= set(argv)
    assert argv[-3:] == ["/bin/sh", "-c", "x"]


def test_environment_is_built_from_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", "never-inside")
    env = stage_env(make_cell(tmp_path), {"SE_CURRENT_STAGE": "run"})
    assert set(env) == {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "TMPDIR",
        "PYTHONPATH",  # grader_harness, and nothing else
        "PYTHONNOUSERSITE",  # no usercustomize or .pth from a home student code wrote to
        "GRADER_HARNESS_WORKER",
        "PYTEST_PLUGINS",  # the harness's per-test time limit in every pytest
        "SE_CURRENT_STAGE",
    }
    assert env["PYTHONPATH"] == "/sphere-engine/lib"
    assert env["PATH"].split(":")[:2] == ["/sphere-engine/bin", f"{sys.prefix}/bin"]
    assert "never-inside" not in repr(env)


# Uids ----------------------------------------------------------------------------------------


@needs_root
def test_running_submissions_never_share_a_uid() -> None:
    with sandbox_uid() as first, sandbox_uid() as second:
        assert first is not None and second is not None and first != second


@needs_root
def test_uids_rotate_so_a_recent_submissions_uid_does_not_come_back() -> None:
    seen = []
    for _ in range(20):  # one after another: the lowest free uid would be the same each time
        with sandbox_uid() as uid:
            seen.append(uid)
    assert len(set(seen)) == len(seen)
    offset = int((lock_folder() / CURSOR).read_text())
    assert 0 <= offset < SANDBOX_UIDS  # the cursor every engine process on this host shares


@needs_root
def test_a_uid_held_by_another_engine_process_is_skipped() -> None:
    # the uid the cursor points at next, held by another process (as another engine would)
    with sandbox_uid():
        pass  # the cursor file exists
    offset = int((lock_folder() / CURSOR).read_text())
    probe = SANDBOX_UID_BASE + (offset + 1) % SANDBOX_UIDS
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"f = open({str(lock_path(probe))!r}, 'a')\n"
         "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with sandbox_uid() as uid:
            assert uid != probe
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]


# Stages, for real ----------------------------------------------------------------------------


@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_stage_runs_as_its_own_uid_without_capabilities(tmp_path: Path, kind: str) -> None:
    with sandbox_uid() as uid:
        exit, out, _ = run(
            make_cell(tmp_path, kind, uid), "id -u; grep CapEff /proc/self/status; pwd"
        )
    assert exit.exit_code == 0
    assert out.split("\n")[:3] == [str(uid), "CapEff:\t0000000000000000", "/home/user/workspace"]


@needs_sandbox
@pytest.mark.sandbox
def test_readable_host_paths_are_readable_not_writable(tmp_path: Path) -> None:
    shared = tmp_path / "shared-data"
    shared.mkdir()
    (shared / "words.txt").write_text("apple\n")
    with sandbox_uid() as uid:
        cell = make_cell(tmp_path / "cell", uid=uid, readable=(sys.prefix, str(shared)))
        _, out, err = run(cell, f"cat {shared}/words.txt; echo x > {shared}/new")
    assert out == "apple\n", err
    assert "Read-only file system" in err
    assert not (shared / "new").exists()


@needs_sandbox
@pytest.mark.sandbox
def test_network_projects_can_reach_the_host(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
        script = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('ok')"
        with sandbox_uid() as uid:
            exit, out, err = run(
                make_cell(tmp_path, uid=uid, network=True), f'python3 -c "{script}"'
            )
    assert (exit.exit_code, out) == (0, "ok\n"), err


@needs_root
@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_every_stage_gets_a_network_namespace_of_its_own(tmp_path: Path, kind: str) -> None:
    # made ahead (by the engine for bubblewrap, by the unshare zygote), or else by the
    # sandbox, their loopback up either way. Three stages at once (a dead namespace's
    # number may come back), then one more each.
    script = (
        'readlink /proc/self/ns/net; python3 -c "import socket; '
        "s = socket.create_server(('127.0.0.1', 0)); "
        "socket.create_connection(s.getsockname(), 2); print('loopback')\" 2>/dev/null; "
        "sleep 0.5"
    )
    host = Path("/proc/thread-self/ns/net").readlink()
    said: dict[int, list[tuple[StageExit, str, str]]] = {0: [], 1: [], 2: []}

    def stages(index: int) -> None:
        with sandbox_uid() as uid:
            cell = make_cell(tmp_path / str(index), kind, uid)
            said[index] += [run(cell, script), run(cell, "readlink /proc/self/ns/net")]
            assert Path("/proc/thread-self/ns/net").readlink() == host  # the engine went back

    threads = [threading.Thread(target=stages, args=(index,)) for index in said]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(runs) == 2 for runs in said.values()), said
    together = []
    for (first, out, err), (second, again, _) in said.values():
        namespace = out.split()[0]
        assert namespace.startswith("net:[") and again.startswith("net:["), out + err
        assert first.exit_code == 0 and "loopback" in out, out + err
        assert second.exit_code == 0 and Path(again.strip()) != host
        together.append(Path(namespace))
    assert len(set(together)) == 3 and host not in together, together


@needs_root
def test_a_forked_engine_never_hands_out_its_parents_namespaces() -> None:
    taken = [netns.take()]
    netns.refill()
    for _ in range(200):  # made ahead (behind) until the stock is full
        if netns._POOL.ready:  # what a fork would inherit
            break
        time.sleep(0.01)
    assert netns._POOL.ready
    child = os.fork()
    if child == 0:
        os._exit(0 if not netns._POOL.ready else 1)
    assert os.waitpid(child, 0)[1] == 0
    for fd in taken:
        if fd is not None:
            os.close(fd)


def _connect_to_the_outside() -> None:
    with socket.socket() as sock:
        sock.connect(("10.0.0.1", 80))


@needs_root
def test_a_namespace_made_ahead_is_new_and_entering_it_always_ends_back_home() -> None:
    host = Path("/proc/thread-self/ns/net").readlink()
    fd = netns.take()
    for _ in range(200):  # made ahead once told (refill), off the stages' path
        if fd is not None:
            break
        netns.refill()
        time.sleep(0.01)
        fd = netns.take()
    assert fd is not None
    try:
        made = Path(f"/proc/self/fd/{fd}").readlink()
        assert made != host
        with netns.entered(fd):
            assert Path("/proc/thread-self/ns/net").readlink() == made
            with pytest.raises(OSError, match="unreachable"):  # nothing of the host's
                _connect_to_the_outside()
        assert Path("/proc/thread-self/ns/net").readlink() == host
        with pytest.raises(ZeroDivisionError), netns.entered(fd):
            raise ZeroDivisionError
        assert Path("/proc/thread-self/ns/net").readlink() == host
    finally:
        os.close(fd)


@needs_sandbox
@pytest.mark.sandbox
def test_a_stage_past_its_wall_time_is_reported_as_timed_out(tmp_path: Path) -> None:
    with sandbox_uid() as uid:
        exit, _, _ = run(make_cell(tmp_path, uid=uid), "sleep 5", timeout=0.3)
    assert exit.timed_out and exit.exit_code is None and exit.seconds < 1.5


@needs_sandbox
@pytest.mark.sandbox
def test_peak_memory_is_measured(tmp_path: Path) -> None:
    with sandbox_uid() as uid:
        script = "python3 -c \"x = b'y' * (60 * 2**20); import time; time.sleep(0.3)\""
        exit, _, err = run(make_cell(tmp_path, uid=uid), script)
    assert exit.exit_code == 0, err
    assert 60 * 1024 <= exit.peak_kb < SMALL.memory_mb * 1024


@needs_sandbox
@pytest.mark.sandbox
def test_peak_memory_counts_the_stage_not_the_engine(tmp_path: Path) -> None:
    ballast = bytearray(200 * 2**20)  # the engine's own memory, copied into a forked child
    ballast[::4096] = b"x" * len(ballast[::4096])
    with sandbox_uid() as uid:
        exit, _, _ = run(make_cell(tmp_path, uid=uid), "python3 -c 'import time; time.sleep(0.2)'")
    assert 0 < exit.peak_kb < 64 * 1024
    del ballast


def test_without_root_bubblewrap_uses_a_user_namespace_and_no_setpriv(tmp_path: Path) -> None:
    argv = stage_argv(make_cell(tmp_path, uid=None), "true", 5.0)
    assert {"--unshare-user", "--disable-userns"} <= set(argv)
    assert argv[argv.index("--uid") + 1] == "1000"
    assert not any(arg.endswith("setpriv") for arg in argv)


def test_address_space_backstop_leaves_room_for_runtimes_that_reserve_memory() -> None:
    assert address_space_bytes(Limits(memory_mb=1024)) >= 8 * 2**30


def _fail_inside_capped(cell: Cell, seen: list[Path]) -> None:
    with capped(cell) as stage_cell:
        assert stage_cell.tmp is not None
        seen.append(stage_cell.tmp)
        fs = os.statvfs(stage_cell.tmp / "tmp")
        assert (fs.f_files, fs.f_blocks * fs.f_frsize) == (TMP_FILES, SMALL.disk_mb * 2**20)
        assert os.statvfs(stage_cell.tmp / "shm").f_files == SHM_FILES
        raise RuntimeError("the stage failed")


@needs_root
@pytest.mark.skipif("bubblewrap" not in KINDS_HERE, reason="bubblewrap cannot run here")
def test_the_host_tmpfs_of_a_stage_is_capped_and_unmounted_even_on_errors(tmp_path: Path) -> None:
    seen: list[Path] = []
    with sandbox_uid() as uid:
        cell = make_cell(tmp_path, "bubblewrap", uid)
        with pytest.raises(RuntimeError, match="the stage failed"):
            _fail_inside_capped(cell, seen)
    assert behind.idle(10)  # taken down off the stage's path
    assert seen and not seen[0].exists()
    assert str(seen[0]) not in Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


@needs_root
@pytest.mark.skipif("bubblewrap" not in KINDS_HERE, reason="bubblewrap cannot run here")
def test_the_host_tmpfs_an_engine_killed_mid_stage_left_is_swept(tmp_path: Path) -> None:
    make_cell(tmp_path, "bubblewrap", SANDBOX_UID_BASE)
    script = (
        "import sys, time\nfrom pathlib import Path\nsys.path.insert(0, sys.argv[1])\n"
        "from grader.engine.sandbox.layout import Cell\n"
        "from grader.engine.sandbox.tmpfs import capped\nfrom grader.engine.spec import Limits\n"
        "t = Path(sys.argv[2])\n"
        "cell = Cell('bubblewrap', t / 'home', t / 'runtime', t / 'streams', t / 'toolkit',"
        " t / 'etc', 3000000, Limits())\n"
        "with capped(cell) as inside:\n"
        "    print(inside.tmp, flush=True)\n"
        "    time.sleep(60)\n"
    )
    engine = subprocess.Popen(
        [sys.executable, "-c", script, str(REPO), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert engine.stdout is not None
        left = Path(engine.stdout.readline().strip())
        assert (left / "tmp").is_mount() and (left / "shm").is_mount()
    finally:
        engine.kill()  # SIGKILL mid-stage: nothing unmounts
        engine.wait()
        engine.stdout.close()  # type: ignore[union-attr]
    assert (left / "tmp").is_mount()  # the attack (a crash) left its mounts
    sweep()
    assert not left.exists() and not left.parent.exists()
    assert str(left) not in Path("/proc/self/mountinfo").read_text()


@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_the_stage_ignores_no_signal(tmp_path: Path, kind: str) -> None:
    # unshare's pid 1 ignores SIGTERM and SIGINT; a stage that inherited that would hang
    # in multiprocessing.Pool's terminate() and outlive every polite kill
    with sandbox_uid() as uid:
        exit, out, err = run(make_cell(tmp_path, kind, uid), "grep SigIgn /proc/self/status")
    assert (exit.exit_code, out) == (0, "SigIgn:\t0000000000000000\n"), err


# What the engine sets itself (no program for it) -------------------------------------------


def test_bubblewrap_gets_its_rlimits_from_the_engine_unless_open_files_is_tiny(
    tmp_path: Path,
) -> None:
    roomy = replace(SMALL, open_files=SETUP_FILES)
    argv = stage_argv(make_cell(tmp_path, uid=SANDBOX_UID_BASE, limits=roomy), "true", 5.0)
    assert not any(arg.endswith("/prlimit") for arg in argv)
    tiny = replace(SMALL, open_files=SETUP_FILES - 1)
    argv = stage_argv(make_cell(tmp_path, uid=SANDBOX_UID_BASE, limits=tiny), "true", 5.0)
    assert any(arg.endswith("/prlimit") for arg in argv)


def _limits_table(text: str) -> dict[str, list[str]]:
    """/proc/self/limits: each limit's soft and hard value."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("Max "):
            rows[line[:26].strip()] = line[26:].split()[:2]
    return rows


@needs_root
@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("open_files", [SETUP_FILES, 20])
@pytest.mark.parametrize("kind", NAMESPACED)
def test_the_stage_runs_under_its_rlimits_and_in_its_own_cgroups(
    tmp_path: Path, kind: str, open_files: int
) -> None:
    limits = replace(SMALL, processes=37, open_files=open_files, file_size_mb=3)
    with sandbox_uid() as uid:
        cell = make_cell(tmp_path, kind, uid, limits=limits)
        exit, out, err = run(cell, "cat /proc/self/limits /proc/self/cgroup", timeout=6.5)
    assert exit.exit_code == 0, err
    table = _limits_table(out)
    assert table["Max open files"] == [str(open_files)] * 2
    assert table["Max processes"] == ["37"] * 2
    assert table["Max file size"] == [str(3 * 2**20)] * 2
    assert table["Max cpu time"] == ["8"] * 2  # the timeout's whole seconds, plus one
    assert table["Max core file size"] == ["0"] * 2
    if not cgroups.missing():  # every controller: the stage is in a cgroup of its own
        memberships = [line for line in out.splitlines() if line[:1].isdigit()]
        assert memberships and all("stage-" in line or line.endswith(":/") for line in memberships)
        assert any("stage-" in line for line in memberships) or kind == "bubblewrap", memberships


@needs_root
@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_etc_is_one_mount_of_copies_with_the_cells_own_passwd(tmp_path: Path, kind: str) -> None:
    with sandbox_uid() as uid:
        cell = make_cell(tmp_path, kind, uid)
        script = (
            "grep -c . /etc/ld.so.cache >/dev/null && echo cache; id -un; "
            "grep ' /etc ' /proc/self/mountinfo; touch /etc/x 2>&1; ls /etc; "
            "grep -h -E '^(passwd|group):' /etc/nsswitch.conf"
        )
        exit, out, err = run(cell, script)
    assert exit.exit_code == 0, err
    lines = out.splitlines()
    assert lines[:2] == ["cache", "user"], out
    etc = lines[2].split()
    assert etc[3] == "/" and "tmpfs" in etc, etc  # a tmpfs's own root: no host folder named
    assert "Read-only file system" in lines[3]
    if Path("/etc/nsswitch.conf").exists():  # no host module is asked about users inside
        assert {"passwd: files", "group: files"} <= set(lines), out
    listed = set(lines[4:])
    assert {"passwd", "group"} <= listed and "shadow" not in listed
    assert {name for name in ("ld.so.cache", "hosts") if Path("/etc", name).exists()} <= listed


@needs_root
@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_dev_holds_the_usual_devices_which_the_stage_uses_but_cannot_change(
    tmp_path: Path, kind: str
) -> None:
    script = (
        "ls -A /dev | tr '\\n' ' '; echo; head -c 3 /dev/zero | wc -c; "
        "head -c 5 /dev/urandom | wc -c; echo x > /dev/null && echo null; "
        "echo x 2>/dev/null > /dev/full || echo full; readlink /dev/stdin; "
        "touch /dev/x 2>&1 | grep -c denied; chmod 600 /dev/null 2>&1 | grep -c 'not permitted'; "
        "grep ' /dev ' /proc/self/mountinfo"
    )
    with sandbox_uid() as uid:
        exit, out, err = run(make_cell(tmp_path, kind, uid), script)
    assert exit.exit_code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == sorted(
        ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"]
    )
    assert lines[1:8] == ["3", "5", "null", "full", "/proc/self/fd/0", "1", "1"], out
    dev = lines[8].split()
    assert dev[3] == "/" and "tmpfs" in dev, dev  # a tmpfs's own root: no host folder named
    with capped(make_cell(tmp_path / "again", kind, uid)) as cell:  # one engine-wide /dev
        assert cell.system_dev == tmpfs.system_dev() and cell.system_dev is not None
        if kind == "bubblewrap":
            assert stage_argv(cell, "true", 1).count("--dev-bind") == 1


def test_the_sandboxs_user_databases_are_its_own_files_only() -> None:
    host = (
        "# comment: passwd: ldap\n"
        "passwd:         files systemd\n"
        "group: compat sss\n"
        "shadow:files\n"
        "gshadow:        files systemd\n"
        "hosts:          files mdns4_minimal [NOTFOUND=return] dns\n"
        "netgroup:       nis"
    )
    assert tmpfs.files_only(host).splitlines() == [
        "# comment: passwd: ldap",
        "passwd: files",
        "group: files",
        "shadow: files",
        "gshadow: files",
        "hosts:          files mdns4_minimal [NOTFOUND=return] dns",
        "netgroup:       nis",
    ]


@needs_root
def test_the_copy_of_etc_is_made_once_and_again_when_the_host_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tmp_path / "etc"
    (host / "ld.so.conf.d").mkdir(parents=True)
    (host / "ld.so.conf.d" / "a.conf").write_text("/opt/a\n")
    (host / "hosts").write_text("127.0.0.1 localhost\n")
    (host / "localtime").symlink_to("/usr/share/zoneinfo/UTC")
    (host / "nsswitch.conf").write_text("passwd:  files systemd\nhosts: files dns\n")
    monkeypatch.setattr(tmpfs, "ETC", host)
    monkeypatch.setattr(tmpfs, "_ETC", {})
    monkeypatch.setattr(tmpfs, "_ETC_CHECKED", {})
    monkeypatch.setattr(tmpfs, "ETC_RECHECK_SECONDS", 0.0)
    first = tmpfs.system_etc(False)
    assert tmpfs.system_etc(False) == first
    assert (first / "ld.so.conf.d" / "a.conf").read_text() == "/opt/a\n"
    assert (first / "localtime").readlink() == Path("/usr/share/zoneinfo/UTC")
    assert (first / "passwd").read_text() == "" and first.is_mount()
    assert (first / "nsswitch.conf").read_text() == "passwd: files\nhosts: files dns\n"
    (host / "hosts").unlink()
    (host / "hosts").write_text("127.0.0.1 changed\n")
    monkeypatch.setattr(tmpfs, "ETC_RECHECK_SECONDS", 3600.0)
    assert tmpfs.system_etc(False) == first  # not compared again within the hour
    monkeypatch.setattr(tmpfs, "ETC_RECHECK_SECONDS", 0.0)
    second = tmpfs.system_etc(False)
    assert second != first and (second / "hosts").read_text() == "127.0.0.1 changed\n"
    for folder in (first, second):
        tmpfs.unmount(folder)
        folder.rmdir()


@needs_root
@needs_sandbox
@pytest.mark.sandbox
def test_a_bubblewrap_that_fails_before_its_sandbox_exists_is_reported_not_awaited(
    tmp_path: Path,
) -> None:
    with sandbox_uid() as uid:
        cell = make_cell(tmp_path, "bubblewrap", uid, readable=(sys.prefix, sys.base_prefix))
        (cell.etc / "passwd").unlink()  # a bind whose source is gone: bubblewrap gives up
        exit, out, err = run(cell, "echo ran")
    assert exit.exit_code not in (0, None) and out == ""
    assert "passwd" in err
