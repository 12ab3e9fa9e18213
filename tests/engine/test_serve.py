"""The engine as a real server process: the quickstart's curl commands, verbatim, and a
crash (SIGKILL) followed by a restart on the same data."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from grader.engine.sandbox.tmpfs import BASE
from tests.support.treekit import ATTACK, reaches_past_path_max, remove_trees_under

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _no_tree_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    remove_trees_under(tmp_path)


TOKEN = "served-token-3c7a"
JUNIT = (
    '<?xml version="1.0"?><testsuite name="s" tests="1">'
    '<testcase classname="c" name="test_sources_listed" time="0.0"/></testsuite>'
)
# a marker no other process on the machine runs (this run's pid in it: two test runs at
# once would see each other's otherwise), 37 s and a fraction
SLOW = f"sleep 37.{os.getpid():07d}"


def example_project(projects: Path) -> None:
    """The quickstart's EXAMPLE project with a ``run`` scenario (and a slow one)."""
    folder = projects / "EXAMPLE"
    folder.mkdir(parents=True)
    run = f"ls -R src && printf '%s' '{JUNIT}' > \"$SE_PATH_UNIT_TESTS_REPORT\""
    test = {"command": "se_utils_cli evaluate", "timeout": 10}
    config = {
        "version": 2.1,
        "scenarios": {
            "run": {
                "default": True,
                "stages": {"run": {"command": run, "timeout": 10}, "test": test},
            },
            "slow": {"stages": {"run": {"command": SLOW, "timeout": 60}}},
        },
    }
    (folder / "config.json").write_text(json.dumps(config))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def serve_command() -> list[str]:
    """``python -m grader engine serve`` when the CLI imports, else the module directly."""
    probe = subprocess.run(
        [sys.executable, "-m", "grader", "engine", "serve", "--help"],
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "grader", "engine", "serve"]
    script = (
        "import os, sys; from pathlib import Path; from grader.engine import EngineConfig; "
        "from grader.engine.serve import serve; a = dict(zip(sys.argv[1::2], sys.argv[2::2])); "
        "serve(EngineConfig(projects_dir=Path(a['--projects']), data_dir=Path(a['--data']), "
        "token=os.environ['SPHERE_ENGINE_TOKEN'], slots=int(a['--slots']), "
        "base_url=f\"http://127.0.0.1:{a['--port']}/api/v1\"), port=int(a['--port']))"
    )
    return [sys.executable, "-c", script]


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def launch(tmp_path: Path, serve_command: list[str]) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(slots: int = 1) -> Served:
        port = free_port()
        args = [
            *serve_command,
            "--projects",
            str(tmp_path / "projects"),
            "--port",
            str(port),
            "--slots",
            str(slots),
            "--data",
            str(tmp_path / "data"),
        ]
        env = {**os.environ, "SPHERE_ENGINE_TOKEN": TOKEN}
        with (tmp_path / f"server-{port}.log").open("wb") as log:
            process = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=log, stderr=log)
        started.append(process)
        url = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/test", params={"access_token": TOKEN}).status_code == 200:
                    return Served(url, process)
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / f"server-{port}.log").read_text()
            assert time.monotonic() < deadline, "the engine did not start"
            time.sleep(0.05)

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def shell(command: str, cwd: Path) -> bytes:
    """Run a command line exactly as the docs write it (hence a shell); its stdout."""
    done = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, check=True)  # noqa: S602
    return done.stdout


def curl(command: str, cwd: Path) -> Any:
    """A documented curl command line; its output parsed as JSON."""
    return json.loads(shell(command, cwd))


def wait_done(url: str, sid: int, cwd: Path, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        body = curl(f'curl "{url}/submissions/{sid}?access_token={TOKEN}"', cwd)
        if not body["executing"]:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_the_quickstart_curl_commands_work_verbatim(tmp_path: Path, launch: Any) -> None:
    example_project(tmp_path / "projects")
    work = tmp_path / "client"
    (work / "src" / "models").mkdir(parents=True)
    (work / "src" / "views").mkdir()
    (work / "src" / "models" / "Bookstore.ts").write_text("export class Bookstore {}\n")
    (work / "src" / "models" / "User.ts").write_text("export class User {}\n")
    (work / "src" / "views" / "Library.tsx").write_text("export const Library = 1;\n")
    # Step 2 of the quickstart, verbatim.
    shell("tar -czf source.tar.gz --transform 's,^,workspace/,' ./src", work)
    served = launch()
    url = served.url
    assert curl(f"curl -X GET '{url}/test?access_token={TOKEN}'", work) == {
        "message": "You can use Sphere Engine Containers API."
    }
    created = curl(
        "curl -X POST \\\n"
        '  -F "project_id=EXAMPLE" \\\n'
        '  -F "scenario=run" \\\n'
        '  -F "source=@source.tar.gz" \\\n'
        f'  "{url}/submissions?access_token={TOKEN}"',
        work,
    )
    assert created["message"] == "Submission has been created"
    sid = created["id"]
    body = wait_done(url, sid, work)
    assert body["result"]["status"] == {"code": 15, "name": "ok"}, body
    assert body["scenario"] == "run" and body["project"]["id"] == "EXAMPLE"
    assert body["result"]["score"] == 100
    output = shell(
        f"curl -s '{url}/submissions/{sid}/stage_run_output?access_token={TOKEN}'", work
    ).decode()
    assert "Bookstore.ts" in output and "Library.tsx" in output
    report = curl(f"curl -s '{url}/submissions/{sid}/tests_report?access_token={TOKEN}'", work)
    assert [test["name"] for test in report] == ["test_sources_listed"]
    # The reference's examples, with the endpoint and token filled in.
    assert curl(f"curl -X GET '{url}/stats?access_token={TOKEN}'", work) == {
        "workspace_slots": {"all": 1, "free": 1}
    }
    batch = curl(f"curl -X GET '{url}/submissions?ids={sid}&access_token={TOKEN}'", work)
    assert [item["id"] for item in batch["items"]] == [sid]
    workspace = curl(
        f'curl -X POST --form "project_id=EXAMPLE" "{url}/workspaces?access_token={TOKEN}"', work
    )["workspace"]
    listed = curl(f"curl -X GET '{url}/workspaces?project_id=EXAMPLE&access_token={TOKEN}'", work)
    assert [item["id"] for item in listed["items"]] == [workspace["id"]]
    one = curl(f"curl -X GET '{url}/workspaces/{workspace['id']}?access_token={TOKEN}'", work)
    assert one["state"] == {"code": 2, "name": "running"}
    # "output" is the reference's example, though no such stream is listed: 404 / 1101.
    missing = curl(f"curl -X GET '{url}/submissions/{sid}/output?access_token={TOKEN}'", work)
    assert missing == {"message": f"submission {sid} has no stream 'output'", "error_code": 1101}
    served.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert served.process.wait(timeout=30) in (0, -signal.SIGTERM)
    logs = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
    assert "Application shutdown complete" in logs
    assert "POST /api/v1/submissions 201" in logs  # the engine's access log, without query
    assert TOKEN not in logs


def test_a_killed_engine_finishes_the_interrupted_run_as_20_and_reruns_the_waiting_one(
    tmp_path: Path, launch: Any
) -> None:
    example_project(tmp_path / "projects")
    first = launch(slots=1)
    params = {"access_token": TOKEN}
    with httpx.Client(base_url=first.url + "/", params=params) as client:
        slow, fast = slow_then_waiting(tmp_path, client)
        assert client.get(f"submissions/{fast}").json()["result"]["status"]["code"] == 0
    first.process.kill()  # no shutdown: the run is left "executing" in SQLite
    first.process.wait()
    second = launch(slots=1)
    with httpx.Client(base_url=second.url + "/", params=params) as client:
        interrupted = client.get(f"submissions/{slow}").json()
        assert interrupted["result"]["status"] == {"code": 20, "name": "internal error"}
        assert interrupted["executing"] is False
        log = client.get(f"submissions/{slow}/debug_log").text
        assert "the engine stopped while this submission ran" in log
        rerun = wait_done(second.url, fast, tmp_path)
        assert rerun["result"]["status"]["code"] == 15
    assert slow_processes() == [], "the killed engine's sandbox outlived it"


def slow_then_waiting(tmp_path: Path, client: httpx.Client) -> tuple[int, int]:
    """On a one-slot engine serving EXAMPLE (``example_project``): a submission running
    ``SLOW`` (status 3 when this returns) and one waiting behind it; their ids."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    archive = tmp_path / "source.tar.gz"
    subprocess.run(
        ["tar", "-czf", str(archive), "--transform", "s,^,workspace/,", "src"],
        cwd=tmp_path,
        check=True,
    )
    files = {"source": archive.read_bytes()}
    slow = client.post(
        "submissions", data={"project_id": "EXAMPLE", "scenario": "slow"}, files=files
    ).json()["id"]
    waiting = client.post("submissions", data={"project_id": "EXAMPLE"}, files=files).json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"submissions/{slow}").json()["result"]["status"]["code"] != 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return slow, waiting


def slow_processes() -> list[str]:
    """Live processes whose command line holds ``SLOW`` (none may outlive its engine)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if SLOW.encode() in cmdline.read_bytes().replace(b"\0", b" "):
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def test_a_stopped_engine_cancels_the_run_and_the_one_held_for_its_turn_runs_after_restart(
    tmp_path: Path, launch: Any
) -> None:
    # slots=1: the second submission is prepared ahead, its sandbox held before its command
    # (spec.Turn); a graceful stop ends the first as 20 and puts the second back to waiting
    example_project(tmp_path / "projects")
    first = launch(slots=1)
    params = {"access_token": TOKEN}
    with httpx.Client(base_url=first.url + "/", params=params) as client:
        slow, held = slow_then_waiting(tmp_path, client)
        time.sleep(0.5)  # time enough for the second to be prepared and held
        assert client.get(f"submissions/{held}").json()["result"]["status"]["code"] == 0
    first.process.terminate()  # uvicorn stops the app, then ends by the same signal
    first.process.wait(timeout=60)
    second = launch(slots=1)
    with httpx.Client(base_url=second.url + "/", params=params) as client:
        stopped = client.get(f"submissions/{slow}").json()
        assert stopped["result"]["status"]["code"] == 20
        log = client.get(f"submissions/{slow}/debug_log").text
        assert "cancelled (the engine is shutting down)" in log  # stopped, not crashed
        rerun = wait_done(second.url, held, tmp_path)
        assert rerun["result"]["status"]["code"] == 15
        output = client.get(f"submissions/{held}/stage_run_output").text
        assert "a.txt" in output  # its upload was kept while it waited again
    assert slow_processes() == [], "the stopped engine's sandbox outlived it"


def attack_scenario(projects: Path) -> bytes:
    """An "attack" scenario for EXAMPLE (every kind of tree, then a long sleep); the
    archive that carries the attack (and the sources the default scenario lists)."""
    config_path = projects / "EXAMPLE" / "config.json"
    config = json.loads(config_path.read_text())
    run = f'python3 attack.py . "$HOME/junk" && {SLOW}'
    config["scenarios"]["attack"] = {"stages": {"run": {"command": run, "timeout": 60}}}
    config_path.write_text(json.dumps(config))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("attack.py", ATTACK.encode()), ("src/a.txt", b"a\n")):
            info = tarfile.TarInfo(f"workspace/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def start_attack(client: httpx.Client, data: Path, source: bytes, engine: int) -> int:
    """Submit the attack and wait until its trees exist (the links come last), in the
    submission's folder or in its own capped tmpfs (``tmpfs.cell_area``: the engine as
    root, under the folder of the engine process ``engine``)."""
    sid: int = client.post(
        "submissions",
        data={"project_id": "EXAMPLE", "scenario": "attack"},
        files={"source": source},
    ).json()["id"]
    homes = [data / "submissions" / str(sid) / "work" / "home"]
    deadline = time.monotonic() + 60
    while True:
        homes += [area / "home" for area in BASE.glob(f"{engine}-*/cell-*")]
        for home in homes:
            if all(
                home.joinpath(*p, "passwd-link").is_symlink() for p in [("workspace",), ("junk",)]
            ):
                assert reaches_past_path_max(home / "junk")
                return sid
        assert time.monotonic() < deadline, "the attack did not run"
        time.sleep(0.05)


def test_a_start_unmounts_what_a_killed_engine_left_mounted_without_running_anything(
    tmp_path: Path, launch: Any
) -> None:
    example_project(tmp_path / "projects")
    source = attack_scenario(tmp_path / "projects")
    first = launch(slots=1)
    with httpx.Client(base_url=first.url + "/", params={"access_token": TOKEN}) as client:
        start_attack(client, tmp_path / "data", source, first.process.pid)
    left = list(BASE.glob(f"{first.process.pid}-*"))
    first.process.kill()  # its submission's capped tmpfs stays mounted, holding memory
    first.process.wait()
    assert left, "the attack ran on the host disk: nothing to sweep (not root?)"
    launch(slots=1)  # nothing submitted: only its start can sweep
    deadline = time.monotonic() + 60
    while list(BASE.glob(f"{first.process.pid}-*")) or f"{BASE}/{first.process.pid}-" in (
        Path("/proc/self/mountinfo").read_text()
    ):
        assert time.monotonic() < deadline, "the killed engine's mounts were not swept"
        time.sleep(0.1)


def test_an_engine_stopped_or_killed_while_a_run_left_every_kind_of_tree_starts_again(
    tmp_path: Path, launch: Any
) -> None:
    example_project(tmp_path / "projects")
    source = attack_scenario(tmp_path / "projects")
    data = tmp_path / "data"
    params = {"access_token": TOKEN}
    first = launch(slots=1)
    with httpx.Client(base_url=first.url + "/", params=params) as client:
        stopped = start_attack(client, data, source, first.process.pid)
    first.process.send_signal(signal.SIGTERM)  # a clean stop cancels the run
    assert first.process.wait(timeout=60) in (0, -signal.SIGTERM)
    second = launch(slots=1)
    with httpx.Client(base_url=second.url + "/", params=params) as client:
        assert client.get(f"submissions/{stopped}").json()["result"]["status"]["code"] == 20
        killed = start_attack(client, data, source, second.process.pid)
        waiting = client.post(
            "submissions", data={"project_id": "EXAMPLE"}, files={"source": source}
        ).json()["id"]
    second.process.kill()  # no shutdown at all: the run and its trees stay as they were
    second.process.wait()
    third = launch(slots=1)
    with httpx.Client(base_url=third.url + "/", params=params) as client:
        interrupted = client.get(f"submissions/{killed}").json()
        assert interrupted["result"]["status"]["code"] == 20
        assert "the engine stopped while this submission ran" in (
            client.get(f"submissions/{killed}/debug_log").text
        )
        assert wait_done(third.url, waiting, tmp_path)["result"]["status"]["code"] == 15
        deadline = time.monotonic() + 60
        while any((data / "trash").iterdir()):
            assert time.monotonic() < deadline, "the trash was not emptied"
            time.sleep(0.1)
    for folder in (data / "submissions").iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["streams"]
    # the killed engines' capped tmpfs mounts were unmounted and their folders removed
    mounts = Path("/proc/self/mountinfo").read_text()
    for engine in (first.process.pid, second.process.pid):
        assert not list(BASE.glob(f"{engine}-*")) and f"{BASE}/{engine}-" not in mounts
