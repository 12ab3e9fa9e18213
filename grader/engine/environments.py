"""One Python environment per distinct requirement set, built once, shown read-only.

A project that needs packages beyond the standard library and pytest puts a
``requirements.txt`` beside its ``config.json``. Before such a project's first submission
runs, the engine builds a virtual environment for it with uv (a relocatable venv on the
engine's own interpreter, plus the engine's pytest unless the requirements name one) under
``<data>/environments/<key>``, where ``key`` hashes the requirements and the interpreter:
two projects with the same requirements share one environment, and a new interpreter or
a changed file builds a new one. The build happens once however many submissions arrive
at the same time (a lock per key, across threads and engine processes); a folder without
its ``ready`` marker is a build that died and is built again.

The sandbox mounts the environment read-only at ``/sphere-engine/env`` and puts its
``bin`` first on ``PATH`` after the toolkit, so ``python3`` in a stage is the
environment's (``sandbox/layout.py``); the grading harness stays importable from the
toolkit's lib. A build that fails (no network, a package that does not exist) fails the
project's submissions with status 22 and uv's own reason, which names the package; it is
tried again after ``RETRY_FAILED_SECONDS``, not once per waiting submission.

Requirements are the instructor's, like the project's tests: uv runs them on the host,
outside the sandbox (an sdist's build script included), so only a trusted project
folder may carry a ``requirements.txt``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from grader.errors import ConfigError

log = logging.getLogger(__name__)

REQUIREMENTS = "requirements.txt"
READY = "ready"  # written last: its text is `uv pip freeze` of the built environment
BUILD_TIMEOUT = 600.0  # seconds for one environment's venv and install
RETRY_FAILED_SECONDS = 60.0  # a failed build is not tried again sooner than this
MAX_REQUIREMENTS_BYTES = 64 * 1024
UV_ENVIRONMENT = (  # the variables uv is given (prefixes): index, proxies, certificates, cache
    "PATH",
    "HOME",
    "LANG",
    "LC_",
    "TMPDIR",
    "XDG_",
    "UV_",
    "PIP_",
    "SSL_CERT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
)
UV_DECORATIONS = "\u00d7\u2570\u2500\u25b6\u2502\u251c "  # the tree uv draws around a message


class EnvironmentBuildError(ConfigError):
    """A project's environment cannot be built: the reason names the package when uv does."""


@dataclass(frozen=True)
class Requirements:
    """A project's requirements.txt, normalised, and the key of its environment."""

    project: str
    text: str
    key: str

    @property
    def names_pytest(self) -> bool:
        return any(_name(line) == "pytest" for line in self.text.splitlines())


def requirements_of(project_dir: Path, project_id: str) -> Requirements | None:
    """The project's requirements (None: it has none and runs on the engine's Python).

    Raises EnvironmentBuildError when the file exists but cannot be used.
    """
    path = project_dir / REQUIREMENTS
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = f"{project_id}/{REQUIREMENTS}: cannot be read: {exc.strerror}"
        raise EnvironmentBuildError(reason) from None
    if len(raw) > MAX_REQUIREMENTS_BYTES:
        raise EnvironmentBuildError(
            f"{project_id}/{REQUIREMENTS}: larger than {MAX_REQUIREMENTS_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvironmentBuildError(f"{project_id}/{REQUIREMENTS}: not UTF-8 text") from None
    lines = [line.split(" #")[0].strip() for line in text.splitlines()]
    kept = "\n".join(line for line in lines if line and not line.startswith("#"))
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(("-e", "--editable", "-r", "--requirement", "-c", "file:")):
            raise EnvironmentBuildError(
                f"{project_id}/{REQUIREMENTS}, line {number}: {stripped.split()[0]} is not "
                "supported (name packages from the index, one per line)"
            )
    interpreter = f"{sys.implementation.name}-{sys.version}-{os.path.realpath(sys.executable)}"
    digest = hashlib.sha256(f"{interpreter}\n{_pytest_pin()}\n{kept}".encode()).hexdigest()
    return Requirements(project_id, kept + "\n", digest[:24])


def _name(line: str) -> str:
    """The distribution name a requirement line starts with, normalised (PEP 503)."""
    name = ""
    for char in line.strip():
        if not (char.isalnum() or char in "-_."):
            break
        name += char
    return name.lower().replace("_", "-").replace(".", "-")


def _pytest_pin() -> str:
    import pytest  # the engine's own: the harness is tested against it

    return f"pytest=={pytest.__version__}"


@dataclass(frozen=True)
class EnvironmentState:
    """What ``grader doctor`` says of one project's environment."""

    project: str
    key: str | None  # None: the project has no requirements.txt
    ready: bool
    detail: str


class Environments:
    """The environments under ``root`` (the engine's ``<data>/environments``)."""

    def __init__(self, root: Path, *, uv: str | None = None) -> None:
        self.root = root
        self._uv = uv
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._failed: dict[str, tuple[float, str]] = {}  # key -> (monotonic time, reason)

    def path(self, requirements: Requirements) -> Path:
        return self.root / requirements.key

    def is_ready(self, requirements: Requirements) -> bool:
        return (self.path(requirements) / READY).is_file()

    def state(self, project_dir: Path, project_id: str) -> EnvironmentState:
        try:
            requirements = requirements_of(project_dir, project_id)
        except EnvironmentBuildError as exc:
            return EnvironmentState(project_id, None, False, str(exc))
        if requirements is None:
            return EnvironmentState(project_id, None, True, "the engine's own Python")
        if self.is_ready(requirements):
            count = len((self.path(requirements) / READY).read_text().splitlines())
            detail = f"ready ({count} packages, {requirements.key})"
            return EnvironmentState(project_id, requirements.key, True, detail)
        return EnvironmentState(
            project_id, requirements.key, False, f"not built yet ({requirements.key})"
        )

    def ensure(self, project_dir: Path, project_id: str) -> Path | None:
        """The project's environment, built now if needed (blocks); None: no requirements.

        Raises EnvironmentBuildError (status 22 for the submission) when it cannot be built.
        """
        return self.ensure_for(requirements_of(project_dir, project_id))

    def ensure_for(self, requirements: Requirements | None) -> Path | None:
        """``ensure`` for requirements already read (``requirements_of``)."""
        if requirements is None:
            return None
        target = self.path(requirements)
        if (target / READY).is_file():
            return target
        with self._lock(requirements.key):
            failed = self._failed.get(requirements.key)
            if failed is not None and time.monotonic() - failed[0] < RETRY_FAILED_SECONDS:
                raise EnvironmentBuildError(failed[1])
            with self._host_lock(requirements.key):
                if not (target / READY).is_file():
                    try:
                        self._build(requirements, target)
                    except EnvironmentBuildError as exc:
                        self._failed[requirements.key] = (time.monotonic(), str(exc))
                        raise
            self._failed.pop(requirements.key, None)
        return target

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextlib.contextmanager
    def _host_lock(self, key: str) -> Iterator[None]:
        """Held by one engine process at a time (two engines may share a --data)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f".{key}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _build(self, requirements: Requirements, target: Path) -> None:
        if target.exists():  # a build that died before its marker: start over
            shutil.rmtree(target)
        project = requirements.project
        log.info("building the environment of project %s (%s)", project, requirements.key)
        started = time.monotonic()
        uv = self._uv or _find_uv()
        self._uv_run(
            [uv, "venv", "--quiet", "--relocatable", "--python", sys.executable, str(target)],
            project,
        )
        listing = target / REQUIREMENTS
        listing.write_text(requirements.text)
        python = str(target / "bin" / "python")
        packages = ["-r", str(listing)]
        if not requirements.names_pytest:
            packages.append(_pytest_pin())
        self._uv_run([uv, "pip", "install", "--quiet", "--python", python, *packages], project)
        frozen = self._uv_run([uv, "pip", "freeze", "--python", python], project)
        (target / READY).write_text(frozen)
        seconds = time.monotonic() - started
        log.info("environment of project %s ready in %.1f s", project, seconds)

    def _uv_run(self, argv: list[str], project: str) -> str:
        # only what uv needs: no token (engine, LMS) reaches a package's build script
        env = {key: value for key, value in os.environ.items() if key.startswith(UV_ENVIRONMENT)}
        env["UV_NO_PROGRESS"] = "1"
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise EnvironmentBuildError(
                f"project {project}: its environment did not build within {BUILD_TIMEOUT:.0f} s"
            ) from None
        except OSError as exc:
            raise EnvironmentBuildError(
                f"project {project}: uv cannot run ({exc.strerror}); install grader's "
                "dependencies again (uv ships with them)"
            ) from None
        if done.returncode != 0:
            raise EnvironmentBuildError(
                f"project {project}: its environment cannot be built: {_reason(done.stderr)}"
            )
        return done.stdout


def _reason(stderr: str) -> str:
    """uv's message in one line (it names the package and why), without its decorations."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip().lstrip(UV_DECORATIONS).strip()
        if line and not line.startswith(("hint:", "help:")):
            lines.append(line)
    text = " ".join(lines) or "uv failed without a message"
    return text if len(text) <= 600 else text[:597] + "..."


def _find_uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a dependency
        found = shutil.which("uv")
        if found is None:
            raise EnvironmentBuildError("uv is not installed (grader installs it)") from None
        return found
    return str(find_uv_bin())


def prepare(projects_dir: Path, data_dir: Path) -> list[EnvironmentState]:
    """Build every project's environment under an engine's ``data_dir`` ahead of a run.

    One state per project folder that has a ``config.json``; a project whose environment
    cannot be built is reported (its state says why) and the others are still built.
    """
    environments = Environments(data_dir / "environments")
    states = []
    for folder in sorted(projects_dir.iterdir()):
        if not (folder / "config.json").is_file():
            continue
        try:
            environments.ensure(folder, folder.name)
        except EnvironmentBuildError as exc:
            states.append(EnvironmentState(folder.name, None, False, str(exc)))
            continue
        states.append(environments.state(folder, folder.name))
    return states
