"""The unshare kind's zygote: the small process that starts its sandboxes, for real.

It must hand each stage its descriptors at their numbers, come back when it was killed,
and take every sandbox with it when the engine ends, however the engine ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runner_kit import NAMESPACED, REPO, needs_root
from test_sandbox import make_cell, run

from grader.engine.sandbox import sandbox_uid, stage_env
from grader.engine.sandbox.spawn import Zygote, start
from grader.engine.sandbox.syscalls import bpf_program

pytestmark = [
    needs_root,
    pytest.mark.sandbox,
    pytest.mark.skipif("unshare" not in NAMESPACED, reason="the unshare sandbox cannot run here"),
]


WRITE_57 = "import os, sys; os.write(57, b'to-57\\n'); print('out'); print('err', file=sys.stderr)"


def test_a_stage_gets_its_descriptors_at_their_numbers(tmp_path: Path) -> None:
    read, write = os.pipe()
    kept = os.dup2(write, 57, inheritable=False)  # a number the zygote's own may hold too
    os.close(write)
    with sandbox_uid() as uid:
        cell = make_cell(tmp_path, "unshare", uid)
        stage = start(
            cell, ["python3", "-c", WRITE_57], 5.0,
            env=stage_env(cell, {}), seccomp=bpf_program(), pass_fds=(kept,),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(kept)
        out, err = stage.communicate(timeout=10)
    assert (stage.returncode, out, err) == (0, b"out\n", b"err\n")
    assert os.read(read, 100) == b"to-57\n"
    assert os.read(read, 100) == b""  # nothing else holds the pipe once the stage ended
    os.close(read)


def test_a_killed_zygote_is_started_again_for_the_next_stage(tmp_path: Path) -> None:
    with sandbox_uid() as uid:
        cell = make_cell(tmp_path, "unshare", uid)
        first, _, _ = run(cell, "true")
        zygote = Zygote.get().process
        zygote.kill()
        zygote.wait()
        exit, out, err = run(cell, "echo again")
    assert first.exit_code == 0
    assert (exit.exit_code, out) == (0, "again\n"), err
    assert Zygote.get().process.pid != zygote.pid


def test_the_zygote_holds_none_of_the_engines_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", "secret-token-of-the-engine")
    zygote = Zygote.get().process
    zygote.kill()
    zygote.wait()
    with sandbox_uid() as uid:
        exit, _, err = run(make_cell(tmp_path, "unshare", uid), "true")
    assert exit.exit_code == 0, err
    environment = Path(f"/proc/{Zygote.get().process.pid}/environ").read_bytes()
    assert b"PATH=" in environment and b"secret-token" not in environment


ENGINE = """
import sys, threading
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_sandbox import make_cell, run
from grader.engine.sandbox.spawn import Zygote
cell = make_cell(Path({folder!r}), "unshare", {uid})
command = "echo started > {marker}; exec sleep 600"
threading.Thread(target=run, args=(cell, command, 900), daemon=True).start()
print(Zygote.get().process.pid, flush=True)
threading.Event().wait()
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_an_engine_that_ends_mid_stage_takes_its_sandboxes_with_it(
    tmp_path: Path, how: signal.Signals
) -> None:
    marker = tmp_path / "home" / "workspace" / "started"
    with sandbox_uid() as uid:
        code = ENGINE.format(
            repo=str(REPO), tests=str(REPO / "tests" / "engine"), folder=str(tmp_path),
            uid=uid, marker="/home/user/workspace/started",
        )  # fmt: skip
        engine = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert engine.stdout is not None
        zygote = int(engine.stdout.readline())
        until = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < until:
            time.sleep(0.05)
        assert marker.exists(), "the stage never started"
        sleeping = _processes_of(uid)
        assert sleeping, "the stage's processes are not running"
        engine.send_signal(how)
        engine.wait(timeout=10)
        engine.stdout.close()
        until = time.monotonic() + 10
        while (_alive(zygote) or _processes_of(uid)) and time.monotonic() < until:
            time.sleep(0.05)
        assert not _alive(zygote), "the zygote outlived its engine"
        assert not _processes_of(uid), "a sandbox outlived its engine"


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
