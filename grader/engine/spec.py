"""The contract between the engine's HTTP side and its runner.

The app (``app.py``, ``store.py``, ``projects.py``, ``uploads.py``) turns an accepted
``POST /submissions`` into a ``RunSpec``; the runner (``runner.py`` with ``sandbox.py``)
turns a ``RunSpec`` into a ``RunOutcome``. Nothing else crosses between them, and both
are plain values, so each side is tested on its own with real files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

STAGE_ORDER = ("init", "build", "run", "test", "post")
"""Canonical stage names in execution order (platform-notes.md)."""
STUDENT_STAGES = ("build",)
"""Stages that run as the student (they compile the student's code); the others run as the
harness, which reaches student code only through the broker."""
PRIVATE_FOLDER = ".sphere-engine"
"""The project's own folder (the platform's convention): always private to the harness."""

# Defaults for a scenario's local-only ``limits`` table (the cloud service ignores it).
DEFAULT_MEMORY_MB = 1024
DEFAULT_PROCESSES = 128
DEFAULT_OUTPUT_BYTES = 1_000_000  # per captured stream; more is truncated with a marker
DEFAULT_DISK_MB = 256  # the workspace and /tmp together
DEFAULT_OPEN_FILES = 256
DEFAULT_FILE_SIZE_MB = 64
DEFAULT_STAGE_TIMEOUT = 60.0  # seconds, when a stage gives none


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every stage of one submission."""

    memory_mb: int = DEFAULT_MEMORY_MB
    processes: int = DEFAULT_PROCESSES
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    disk_mb: int = DEFAULT_DISK_MB
    open_files: int = DEFAULT_OPEN_FILES
    file_size_mb: int = DEFAULT_FILE_SIZE_MB
    read_only_paths: tuple[str, ...] = ()  # further host paths a project may read (absolute)
    private_paths: tuple[str, ...] = ()  # workspace paths student code never sees (besides
    # PRIVATE_FOLDER): pinned read-only, hidden from the build stage and student processes


@dataclass(frozen=True)
class StageSpec:
    """One configured stage. ``command=None`` or ``skip=True``: the stage is skipped."""

    name: str  # one of STAGE_ORDER
    command: str | None
    timeout: float = DEFAULT_STAGE_TIMEOUT  # seconds of wall time
    skip: bool = False


@dataclass(frozen=True)
class RunSpec:
    """Everything the runner needs to execute one submission.

    ``upload_dir`` holds the validated contents of the archive's ``workspace/`` folder
    (already checked by ``uploads.py``: no links out, no devices, within the caps).
    ``work_dir`` is an empty folder the engine owns for this submission; the runner
    builds the workspace, private /tmp and stream files under it and nowhere else.
    """

    submission_id: int
    project_id: str
    project_dir: Path
    upload_dir: Path
    work_dir: Path
    stages: tuple[StageSpec, ...]  # every name of STAGE_ORDER, in order
    read_only: tuple[str, ...] = ()  # workspace-relative paths a submission may not change
    network: bool = False
    limits: Limits = field(default_factory=Limits)
    environment: Path | None = None  # the project's built environment (environments.py)


@dataclass(frozen=True)
class StageOutcome:
    """What happened to one stage, in the quickstart's terms."""

    name: str
    skipped: bool
    time: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    status_changed_to: int | None = None  # a final status this stage decided, if any


@dataclass(frozen=True)
class RunOutcome:
    """The submission's result. ``streams`` maps stream names to files under ``work_dir``.

    Stream names are the quickstart's: ``stage_<stage>_output``/``_error`` for each stage
    that ran, ``tests_report`` (validated JSON array) when the test stage produced one,
    ``debug_log`` always.
    """

    status: int  # a final StatusCode (FINAL_STATUSES)
    stages: tuple[StageOutcome, ...]
    streams: Mapping[str, Path]
    score: float | None = None
    time: float = 0.0  # seconds of the run and test stages
    memory: int = 0  # peak kB of any stage
    signal: int | None = None


class Cancel:
    """Set by the engine when it shuts down: the runner kills what runs and returns (20)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class TurnAbortedError(Exception):
    """The engine stopped before the submission's turn on a slot came: nothing of it ran."""


class Turn:
    """A submission's turn on an execution slot, taken and given back by its runner thread.

    The engine prepares a queued submission before a slot is free: its folders, its cell
    and its first stage's sandbox, held right before the command's exec. The runner takes
    the turn there (``take`` blocks until the engine grants a slot) and gives it back when
    its last stage has ended, before its folders are taken down, so a slot is idle only
    while the next stage's held process is let go.

    ``ask`` and ``give_back`` are the engine's, called on the runner's thread: the engine
    decides there, under its lock, and calls ``grant`` or ``abort`` from whichever thread
    decided (a slot given back goes to the next ready turn from the giver's thread).
    """

    def __init__(
        self,
        submission_id: int,
        ask: Callable[[Turn], None],
        give_back: Callable[[Turn], None],
    ) -> None:
        self.submission_id = submission_id
        self._ask, self._give_back = ask, give_back
        self._decided = threading.Event()
        self.granted = False  # the engine's side: a slot was given to this turn
        self.holding = False  # the engine's side: the slot is still held for it
        self._taken = self._returned = False  # the runner's side

    def take(self) -> None:
        """Wait for a slot (once; later calls return at once). Raises TurnAbortedError."""
        if not self._taken:
            self._taken = True
            self._ask(self)
        self._decided.wait()
        if not self.granted:
            raise TurnAbortedError(f"submission {self.submission_id} never got a slot")

    def give_back(self) -> None:
        """The stages are over: the slot may run the next submission (once)."""
        if self._taken and self.granted and not self._returned:
            self._returned = True
            self._give_back(self)

    def grant(self) -> None:
        self.granted = self.holding = True
        self._decided.set()

    def abort(self) -> None:
        self._decided.set()
