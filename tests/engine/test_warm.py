"""Warm harness stages (``sandbox/warm.py``): the harness's pytest run forked from a zygote
that imported pytest, in the real sandbox, seeing exactly what a cold start sees."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from appkit import grading_config, make_project
from runner_kit import NAMESPACED, make_spec, needs_sandbox, report, sandbox_processes, stages, text

from grader.api.models import StatusCode
from grader.engine import EngineConfig
from grader.engine.environments import REQUIREMENTS
from grader.engine.runner import run_submission
from grader.engine.sandbox import SandboxInfo, spawn, warm, watch
from grader.engine.sandbox.detect import warm_harness
from grader.engine.service import Engine
from grader.engine.spec import RunOutcome
from grader.errors import WarmZygoteError

HARNESS = "python3 -P -m grader_harness pytest -q -s .sphere-engine/tests"

# What a stage can see of how it was started; printed as one JSON line
FACTS = r"""
import json, os, random, resource, signal, socket, sys
import __main__

def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()

def test_facts():
    limits = [resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE,
              resource.RLIMIT_FSIZE, resource.RLIMIT_CPU, resource.RLIMIT_CORE]
    handlers = {}
    for name in ("SIGINT", "SIGPIPE", "SIGXFSZ", "SIGCHLD", "SIGTERM", "SIGHUP", "SIGALRM"):
        handler = signal.getsignal(getattr(signal, name))
        handlers[name] = getattr(handler, "__name__", str(handler))
    umask = os.umask(0o22)
    os.umask(umask)
    facts = {
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
        "env": sorted(os.environ.items()),
        "argv": sys.argv,
        "path": sys.path,
        "flags": [sys.flags.safe_path, sys.flags.no_user_site, sys.flags.isolated,
                  sys.dont_write_bytecode],
        "status": [_status(key) for key in ("NoNewPrivs", "Seccomp", "CapEff", "CapPrm",
                                            "CapBnd", "CapInh", "CapAmb")],
        "cwd": os.getcwd(),
        "handlers": handlers,
        "streams": [sys.stdout.encoding, sys.stdout.errors, sys.stdout.line_buffering,
                    sys.stderr.errors, sys.stderr.line_buffering, sys.stdin.fileno()],
        "limits": [resource.getrlimit(kind) for kind in limits],
        "pid1": open("/proc/1/cmdline", "rb").read().decode(errors="replace"),
        "hostname": socket.gethostname(),
        "umask": umask,
        "main": [__main__.__name__, getattr(__main__, "__file__", None),
                 __main__.__spec__.name if __main__.__spec__ else None],
        "executable": sys.executable,
        "prefix": [sys.prefix, sys.base_prefix],
        "random": random.random(),
        "warm": "grader.engine.sandbox.zygote" in sys.modules,
    }
    print("FACTS " + json.dumps(facts))
"""


def facts_spec(tmp_path: Path, name: str, command: str = HARNESS):  # type: ignore[no-untyped-def]
    return make_spec(
        tmp_path,
        name=name,
        project={".sphere-engine/tests/test_facts.py": FACTS},
        upload={"solution.py": "x = 1\n"},
        stage_specs=stages(timeout=30, run=command, test="se_utils_cli evaluate"),
        read_only=(".sphere-engine",),
    )


def facts_of(outcome: RunOutcome) -> dict[str, object]:
    lines = [line for line in text(outcome, "stage_run_output").splitlines() if "FACTS " in line]
    assert lines, text(outcome, "stage_run_output") + text(outcome, "stage_run_error")
    facts: dict[str, object] = json.loads(lines[0].split("FACTS ", 1)[1])
    return facts


@pytest.mark.parametrize(
    ("command", "reading"),
    [
        ("python3 -P -m grader_harness pytest -q tests", (("-P",), ("pytest", "-q", "tests"))),
        ("python -B -P -m grader_harness pytest t", (("-B", "-P"), ("pytest", "t"))),
        ("  python3  -P  -m grader_harness  pytest  ", (("-P",), ("pytest",))),
    ],
)
def test_the_harness_run_is_read(command: str, reading: object) -> None:
    assert warm.harness_run(command) == reading


@pytest.mark.parametrize(
    "command",
    [
        "python3 -m grader_harness pytest tests",  # no -P: the workspace on sys.path
        "python3 -P -u -m grader_harness pytest tests",  # an option a warm start lacks
        "python3 -P -m grader_harness worker",
        "python3 -P -m pytest tests",
        "python3.11 -P -m grader_harness pytest tests",
        "/usr/bin/python3 -P -m grader_harness pytest tests",
        "python3 -P -m grader_harness pytest tests; rm -rf /",
        "python3 -P -m grader_harness pytest tests > out",
        "python3 -P -m grader_harness pytest $TESTS",
        "X=1 python3 -P -m grader_harness pytest tests",
        "python3 -P -m grader_harness pytest 'a b'",
        "cd x && python3 -P -m grader_harness pytest tests",
        "",
    ],
)
def test_any_other_command_starts_cold(command: str) -> None:
    assert warm.harness_run(command) is None


@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_a_warm_stage_sees_what_a_cold_one_sees(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = SandboxInfo(kind, kind)  # type: ignore[arg-type]
    first = facts_of(run_submission(facts_spec(tmp_path, "warm1"), sandbox=info))
    second = facts_of(run_submission(facts_spec(tmp_path, "warm2"), sandbox=info))
    monkeypatch.setattr(warm, "ENABLED", False)
    cold = facts_of(run_submission(facts_spec(tmp_path, "cold"), sandbox=info))
    assert (first["warm"], second["warm"], cold["warm"]) == (True, True, False)
    # each warm stage gets its own random state, as each fresh interpreter does
    assert len({first["random"], second["random"], cold["random"]}) == 3
    for facts in (first, second, cold):
        del facts["warm"], facts["random"]
        # a uid of the submission's own, and pid 1 names no folder of the engine's (it is
        # bubblewrap's under bubblewrap when cold, the zygote's blanked fork when warm)
        uid, euid, gid, egid, groups = facts.pop("ids")  # type: ignore[misc]
        assert uid == euid == gid == egid != 0 and groups == []
        assert str(tmp_path) not in str(facts.pop("pid1"))
    assert first == cold
    assert second == cold
    assert not sandbox_processes()


@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_a_warm_stage_ends_as_the_interpreter_would(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit codes, tracebacks and atexit: a conftest that fails to import, tests that
    fail, an atexit handler's output, in a warm stage and a cold one."""
    info = SandboxInfo(kind, kind)  # type: ignore[arg-type]
    projects = {
        "broken": {".sphere-engine/tests/conftest.py": "raise ImportError('no such helper')\n"},
        "failing": {
            ".sphere-engine/tests/test_f.py": (
                "import atexit\natexit.register(lambda: print('atexit ran'))\n"
                "def test_ok():\n    pass\ndef test_no():\n    assert 1 + 1 == 3\n"
            )
        },
    }
    seen: dict[bool, dict[str, tuple[object, ...]]] = {}
    for enabled in (True, False):
        monkeypatch.setattr(warm, "ENABLED", enabled)
        seen[enabled] = {}
        for name, files in projects.items():
            spec = make_spec(
                tmp_path,
                name=f"{name}-{enabled}",
                project=files,
                upload={"solution.py": "x = 1\n"},
                stage_specs=stages(timeout=30, run=HARNESS, test="se_utils_cli evaluate"),
                read_only=(".sphere-engine",),
            )
            outcome = run_submission(spec, sandbox=info)
            run = next(stage for stage in outcome.stages if stage.name == "run")
            output = text(outcome, "stage_run_output") + text(outcome, "stage_run_error")
            seen[enabled][name] = (
                outcome.status,
                run.exit_code,
                "no such helper" in output,
                "atexit ran" in output,
                [(t["name"], t["status"]) for t in report(outcome)],
            )
    assert seen[True] == seen[False]
    assert seen[True]["failing"][:2] == (StatusCode.FAIL, 1)
    assert seen[True]["failing"][3] is True
    assert seen[True]["broken"][1] not in (0, 1) and seen[True]["broken"][2] is True


@needs_sandbox
@pytest.mark.sandbox
def test_an_interpreter_that_cannot_be_warmed_starts_cold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(WarmZygoteError, match="could not start"):
        spawn.Zygote.get("/bin/false")
    monkeypatch.setattr(warm, "interpreter", lambda *args: "/bin/false")
    monkeypatch.setattr(watch, "_COLD", set())
    info = SandboxInfo(NAMESPACED[0], NAMESPACED[0])  # type: ignore[arg-type]
    outcome = run_submission(facts_spec(tmp_path, "cold"), sandbox=info)
    assert facts_of(outcome)["warm"] is False
    assert outcome.status == StatusCode.OK
    assert "/bin/false" in watch._COLD


def _end_warm_zygotes() -> None:
    for zygote in spawn.Zygote._warm.values():
        zygote.socket.close()  # a zygote ends when the engine's end of its socket closes
        zygote.process.wait(30)
    spawn.Zygote._warm.clear()


@needs_sandbox
@pytest.mark.sandbox
@pytest.mark.parametrize("uses_harness", [True, False])
def test_an_engine_starts_its_warm_zygote_before_its_first_stage(
    tmp_path: Path, uses_harness: bool
) -> None:
    """Only when a project's stage would use it (importing pytest costs a few hundred
    milliseconds of CPU); a project with an environment of its own never does."""
    python = warm.default_interpreter()
    assert python is not None
    _end_warm_zygotes()
    projects = tmp_path / "projects"
    config = grading_config()
    make_project(projects, "plain", config)
    environment = make_project(projects, "own-python", harness_config())
    (environment / REQUIREMENTS).write_text("pytest\n")
    if uses_harness:
        make_project(projects, "harness", harness_config())

    async def start_and_stop() -> None:
        engine = Engine(EngineConfig(projects, tmp_path / "data", token="t", slots=1))
        await engine.start()
        try:
            assert engine.prewarming is not None
            await asyncio.get_running_loop().run_in_executor(None, engine.prewarming.join, 120)
        finally:
            await engine.stop()

    asyncio.run(start_and_stop())
    assert (python in spawn.Zygote._warm) is uses_harness
    if uses_harness:
        assert spawn.Zygote._warm[python].process.poll() is None


def harness_config() -> dict[str, object]:
    config = grading_config()
    config["scenarios"]["grade"]["stages"]["run"]["command"] = HARNESS
    return config


def test_doctor_says_whether_harness_stages_start_warm() -> None:
    cold, words = warm_harness("rlimits")
    assert not cold and words.startswith("cold:")
    for kind in NAMESPACED:
        started, words = warm_harness(kind)  # type: ignore[arg-type]
        assert started and words.startswith("warm:") and str(warm.default_interpreter()) in words


@needs_sandbox
@pytest.mark.sandbox
def test_an_engine_that_ends_while_its_warm_zygote_starts_leaves_no_trace(
    tmp_path: Path,
) -> None:
    """As `grader doctor` does: start an engine and end the process at once."""
    projects = tmp_path / "projects"
    make_project(projects, "harness", harness_config())
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from grader.engine import EngineConfig\n"
        "from grader.engine.service import Engine\n"
        "async def main():\n"
        f"    engine = Engine(EngineConfig(Path({str(projects)!r}), Path({str(tmp_path)!r})"
        " / 'data', token='t', slots=1))\n"
        "    await engine.start()\n"
        "    await asyncio.sleep(0.15)\n"  # the zygote has started, and imports pytest
        "    await engine.stop()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    time.sleep(1)  # the zygote notices the engine's end and goes (its stderr is shared)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
