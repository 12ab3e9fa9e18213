"""Helpers for the runner, sandbox and hostile-submission tests (real files, real sandbox)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from grader.engine.sandbox import KINDS, leftover_processes, probe_sandbox
from grader.engine.spec import STAGE_ORDER, Limits, RunOutcome, RunSpec, StageSpec

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_course"
PYTEST_RUN = (
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -B -P -m pytest -q -p no:cacheprovider "
    '.sphere-engine/tests --junitxml="$SE_PATH_UNIT_TESTS_REPORT"'
)
SMALL = Limits(memory_mb=128, processes=32, output_bytes=20_000, disk_mb=16, file_size_mb=8)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the engine runs as root here and in CI")


def available_kinds() -> list[str]:
    """Sandbox kinds that work on this machine (probed for real)."""
    return [kind for kind in KINDS if probe_sandbox(kind) is None]


KINDS_HERE = available_kinds() if os.geteuid() == 0 else []
NAMESPACED = [kind for kind in KINDS_HERE if kind != "rlimits"]
DEFAULT_KIND = NAMESPACED[0] if NAMESPACED else "bubblewrap"
needs_sandbox = pytest.mark.skipif(
    not NAMESPACED, reason="needs root and a namespace sandbox (bubblewrap or unshare), as CI has"
)


def stages(timeout: float = 5.0, **commands: str | None) -> tuple[StageSpec, ...]:
    """All five stages; those not named are not configured (skipped)."""
    return tuple(StageSpec(name, commands.get(name), timeout) for name in STAGE_ORDER)


def make_spec(
    tmp_path: Path,
    *,
    project: Mapping[str, str] | None = None,
    upload: Mapping[str, str] | None = None,
    stage_specs: tuple[StageSpec, ...],
    read_only: tuple[str, ...] = (),
    limits: Limits = SMALL,
    name: str = "sub",
) -> RunSpec:
    """A RunSpec over real folders under ``tmp_path/name``: project files, upload, work_dir."""
    base = tmp_path / name
    project_dir, upload_dir, work_dir = base / "project", base / "upload", base / "work"
    for folder, files in ((project_dir, project or {}), (upload_dir, upload or {})):
        folder.mkdir(parents=True)
        for relative, text in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    work_dir.mkdir()
    return RunSpec(1, "p", project_dir, upload_dir, work_dir, stage_specs, read_only, False, limits)


def sample_spec(tmp_path: Path, assignment: str, student: str, name: str = "") -> RunSpec:
    """The real sample course project with a student's bundle (its last commit) uploaded."""
    base = tmp_path / (name or f"{assignment}-{student}")
    upload = base / "upload"
    bundle = SAMPLE / "repos" / assignment / f"{student}.bundle"
    subprocess.run(["git", "clone", "-q", str(bundle), str(upload)], check=True)
    shutil.rmtree(upload / ".git")
    project = SAMPLE / "projects" / assignment
    config = json.loads((project / "config.json").read_text())
    configured = config["scenarios"]["grade"]["stages"]
    specs = tuple(
        StageSpec(n, configured.get(n, {}).get("command"), configured.get(n, {}).get("timeout", 60))
        for n in STAGE_ORDER
    )
    work = base / "work"
    work.mkdir()
    read_only = tuple(config["files"]["read_only"])
    return RunSpec(2, assignment, project, upload, work, specs, read_only, False, Limits())


def text(outcome: RunOutcome, stream: str) -> str:
    """A stream's text ('' when the stream is absent)."""
    path = outcome.streams.get(stream)
    return path.read_text(errors="replace") if path is not None else ""


def report(outcome: RunOutcome) -> list[dict[str, object]]:
    return json.loads(text(outcome, "tests_report") or "null") or []


def sandbox_processes() -> list[int]:
    """Processes of sandbox uids that no running engine holds (none may survive a stage).

    Other engine processes on this machine (other test runs) hold the uids they use, so
    their live stages are not counted.
    """
    return leftover_processes()


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found
