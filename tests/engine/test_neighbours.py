"""No noisy neighbours: a submission grades the same beside an attacker as alone.

A real engine (in-process, over HTTP, two slots, the real runner and sandbox) grades a
partly correct submission alone; then, for each attack, a hostile submission starts,
pushes one resource to its limit (fills its disk, floods /tmp with files, forks to its
process limit, allocates memory up to its cap) and holds it there while the same honest
submission is graded beside it. The hostile one reports its peak in a file of its
workspace (evidence the attack ran) and waits for the test to release it; every wait
is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from appkit import archive, engine_client, make_config, make_project, q, submit, wait_final
from runner_kit import NAMESPACED, PYTEST_RUN, needs_sandbox

from grader.api.models import StatusCode
from grader.engine.runner import run_submission
from grader.engine.sandbox import SandboxInfo
from grader.engine.sandbox.tmpfs import engine_folder
from grader.engine.spec import Cancel, RunOutcome, RunSpec

pytestmark = [pytest.mark.sandbox, needs_sandbox]

MEMORY_MB, PROCESSES, DISK_MB = 128, 32, 32
TESTS = """
from solution import add, work

def test_adds():
    assert add(2, 3) == 5

def test_adds_negative():
    assert add(-2, -3) == -5

def test_works_with_every_resource():
    assert work() == 24 << 20
"""
CONFTEST = "import os, sys\nsys.path.append(os.environ['SE_PATH_WORKSPACE'])\n"
# Two of three tests pass: a wrong neighbour effect would change the score either way.
HONEST = """
import os, subprocess

def add(a, b):
    return a + b if a > 0 else 0

def work():
    # a little of everything the attackers exhaust: files here and in /tmp, a process, memory
    for folder in ("/tmp", "."):
        for n in range(50):
            with open(os.path.join(folder, f"scratch{n}"), "wb") as out:
                out.write(b"y" * 65536)
    subprocess.run(["true"], check=True)
    held = bytearray(24 << 20)
    held[::4096] = b"z" * len(held[::4096])
    return len(held)
"""
# The attacks: each runs at import (in the run stage), writes its peak to ./peak, waits for
# the test's ./release, then ends as it will (a kill at the limit for memory).
HOLD = """
import os, time
def hold(said):
    with open("peak.tmp", "w") as out:
        out.write(said)
    os.rename("peak.tmp", "peak")
    for _ in range(6000):
        if os.path.exists("release"):
            return
        time.sleep(0.01)
"""
ATTACKS = {
    "disk": HOLD
    + f"""
def fill(name, mb):
    with open(name, "wb") as out:
        for _ in range(mb * 16):
            out.write(b"x" * 65536)
written = 0
while written < {DISK_MB - 6}:
    fill(f"fill{{written}}", 2)
    written += 2
hold(f"{{written}} MB written")
while True:
    fill(f"fill{{written}}", 2)
    written += 2
""",
    "inodes": HOLD
    + """
made = 0
try:
    while made < 1_000_000:
        os.close(os.open(f"/tmp/f{made}", os.O_CREAT | os.O_WRONLY, 0o600))
        made += 1
except OSError as exc:
    pass
hold(f"{made} files in /tmp")
""",
    "forks": HOLD
    + """
children = 0
try:
    while children < 10_000:
        if os.fork() == 0:  # sleep lean: a forked pytest's pages would count as memory
            os.execv("/bin/sleep", ["sleep", "60"])
        children += 1
except OSError:
    pass
hold(f"{children} processes")
""",
    "memory": HOLD
    + f"""
chunks = []
while len(chunks) < {MEMORY_MB - 48} // 8:
    chunks.append(bytearray(b"m" * (8 << 20)))
hold(f"{{len(chunks) * 8}} MB held")
while True:
    chunks.append(bytearray(b"m" * (8 << 20)))
""",
}
EVIDENCE = {  # what the peak says when the attack reached its limit
    "disk": lambda said: int(said.split()[0]) >= DISK_MB - 6,
    "inodes": lambda said: int(said.split()[0]) > 10_000,
    "forks": lambda said: PROCESSES - 8 <= int(said.split()[0]) < PROCESSES,
    "memory": lambda said: int(said.split()[0]) >= MEMORY_MB - 48,
}


def project_config() -> dict[str, Any]:
    return {
        "version": 2.1,
        "scenarios": {
            "grade": {
                "default": True,
                "network": False,
                "limits": {"memory_mb": MEMORY_MB, "processes": PROCESSES, "disk_mb": DISK_MB},
                "stages": {
                    "run": {"command": PYTEST_RUN, "timeout": 60},
                    "test": {"command": "se_utils_cli evaluate", "timeout": 20},
                },
            }
        },
        "files": {"read_only": [".sphere-engine"]},
    }


async def grade(client: httpx.AsyncClient, solution: str) -> int:
    response = await submit(client, source=archive({"solution.py": solution.encode()}))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def result(body: dict[str, Any]) -> tuple[int, object]:
    return body["result"]["status"]["code"], body["result"]["score"]


def peaks(data: Path) -> list[Path]:
    """Workspaces holding a peak file (os.walk: the trash empties folders as we walk): in
    the engine's data folder, or in a submission's own capped tmpfs (``tmpfs.cell_area``)."""
    areas = [data, *engine_folder().glob("cell-*")]
    return [
        Path(folder)
        for area in areas
        for folder, _, files in os.walk(area)
        if "peak" in files and Path(folder).name == "workspace"
    ]


async def peak_of(client: httpx.AsyncClient, sid: int, data: Path, seconds: float = 60) -> Path:
    """The attacker's workspace once it wrote its peak (it is the only one that does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        found = await asyncio.to_thread(peaks, data)
        if found:
            return found[0]
        body = (await client.get(f"submissions/{sid}", params=q())).json()
        if not body["executing"]:
            log = await client.get(f"submissions/{sid}/debug_log", params=q())
            raise AssertionError(f"the attack ended before its peak: {log.text}")
        await asyncio.sleep(0.05)
    raise AssertionError("the attack never reached its peak")


@pytest.mark.parametrize("kind", NAMESPACED)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_submission_grades_the_same_beside_an_attacker(
    tmp_path: Path, kind: str, attack: str
) -> None:
    make_project(tmp_path / "projects", "p", project_config())
    tests = tmp_path / "projects/p/.sphere-engine/tests"
    tests.mkdir(parents=True)
    (tests / "test_add.py").write_text(TESTS)
    (tests / "conftest.py").write_text(CONFTEST)
    config = make_config(tmp_path, slots=2)
    sandbox = SandboxInfo(kind, f"{kind} (test)")  # type: ignore[arg-type]

    def runner(spec: RunSpec, cancel: Cancel) -> RunOutcome:
        return run_submission(spec, cancel=cancel, sandbox=sandbox)

    async def scenario() -> None:
        async with engine_client(config, runner=runner) as client:
            alone = result(await wait_final(client, await grade(client, HONEST), 120))
            assert alone == (StatusCode.FAIL, pytest.approx(200 / 3, abs=0.01)), alone
            hostile = await grade(client, ATTACKS[attack])
            workspace = await peak_of(client, hostile, config.data_dir)
            said = (workspace / "peak").read_text()
            assert EVIDENCE[attack](said), said
            beside = result(await wait_final(client, await grade(client, HONEST), 120))
            (workspace / "release").write_text("")
            ended = await wait_final(client, hostile, 120)
            assert beside == alone, (attack, said, beside)
            if attack in ("memory", "disk"):  # released, it went past its cap
                log = await client.get(f"submissions/{hostile}/debug_log", params=q())
                limit = (
                    f"memory limit of {MEMORY_MB}"
                    if attack == "memory"
                    else f"disk limit of {DISK_MB}"
                )
                assert f"{limit} MB exceeded" in log.text, log.text
            assert ended["result"]["status"]["code"] != StatusCode.INTERNAL_ERROR, json.dumps(ended)

    asyncio.run(scenario())
