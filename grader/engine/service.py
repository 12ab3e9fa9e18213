"""The local engine's core, below HTTP: accept, queue, run and record submissions.

``Engine`` owns the store, the slots, the queue, two thread pools (one worker per slot
for the blocking runner, two for file work such as unpacking uploads) and the trash
(one thread removing what submissions left, ``trash.py``). The runner is injected
(default: ``grader.engine.runner.run_submission``), and so is the clock.

Nothing a submission leaves behind can stop the engine: its folders are moved into the
trash (a rename) and removed in the background, after its result is recorded; a start
finishes every submission a stop interrupted (20) before anything else runs.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import math
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from grader.api.models import FINAL_STATUSES, StatusCode
from grader.engine import projects
from grader.engine.environments import (
    REQUIREMENTS,
    Environments,
    Requirements,
    requirements_of,
)
from grader.engine.sandbox import detect_sandbox, prewarm, sweep_dead_engines
from grader.engine.sandbox.layout import adopt_ignored_signals
from grader.engine.scheduler import Scheduler, Slots
from grader.engine.settings import EngineConfig
from grader.engine.spec import STAGE_ORDER, Cancel, RunOutcome, RunSpec, Turn, TurnAbortedError
from grader.engine.store import Finished, StageRecord, Store, SubmissionRecord
from grader.engine.trash import Trash
from grader.engine.uploads import UploadLimits, unpack_workspace
from grader.engine.views import STREAM_NAMES, canonical_stream
from grader.engine.workspaces import Workspaces
from grader.errors import (
    ConfigError,
    CreationFailedError,
    NotFoundError,
    StreamNotFoundError,
    TreeError,
)

log = logging.getLogger("grader.engine")

RunFunction = Callable[[RunSpec, Cancel], RunOutcome]
Clock = Callable[[], datetime]
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def default_runner(spec: RunSpec, cancel: Cancel, turn: Turn) -> RunOutcome:
    """The sandboxed runner, imported when first used: it takes ``turn`` right before its
    first stage's command runs and gives it back after the last stage."""
    # Imported by name: the runner is the other half of the engine and loads the sandbox.
    runner = importlib.import_module("grader.engine.runner")
    outcome: RunOutcome = runner.run_submission(spec, cancel=cancel, turn=turn)
    return outcome


@dataclass(frozen=True)
class NewSubmission:
    """What ``POST /submissions`` asked for, already read from the form."""

    project_id: str
    scenario: str | None
    project_config: str | None
    staging: Path  # holds streams/source (when sent) and an empty upload/
    has_source: bool


class Engine:
    """Submissions and workspaces of one local engine, persisted under ``data_dir``."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        runner: RunFunction | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self.clock = clock
        self._runner = runner  # None: the sandboxed runner (``default_runner``)
        self.store = Store(config.data_dir)
        self.trash = Trash(self.store.trash_dir)
        self.environments = Environments(config.data_dir / "environments")
        self.slots = Slots(config.slot_count)
        # one submission prepared ahead per slot: a freed slot runs it at once
        self.scheduler = Scheduler(
            self.slots,
            self._execute,
            lookahead=config.slot_count,
            on_grant=lambda sid: self.store.set_status(sid, StatusCode.EXECUTION),
        )
        self.workspaces = Workspaces(
            self.store, self.slots, clock, config.projects_dir, config.workspace_lifetime_minutes
        )
        # a thread per started submission: those running and those prepared ahead
        self._runners = ThreadPoolExecutor(2 * config.slot_count, thread_name_prefix="engine-run")
        self._files = ThreadPoolExecutor(2, thread_name_prefix="engine-files")
        self._cancels: dict[int, Cancel] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.prewarming: threading.Thread | None = None  # started with the engine
        self._stopped = False

    # --- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Recover from the last stop, then run what was waiting.

        Submissions the stop interrupted end as 20; what the last run left is moved into
        the trash and removed in the background, and dead engine processes' sandbox mounts
        and cgroups are swept: a start never waits for a removal.
        """
        adopt_ignored_signals()  # a stage then needs no ``env`` to get the default actions
        for path in self.store.leftovers():
            self.trash.discard(path)
        self.trash.start()
        # dead engines' sandbox mounts (a submission's capped tmpfs holds memory until it
        # is unmounted) and cgroups, swept in the background as the trash is emptied
        # (a thread of its own: killing a dead engine's stuck stage may take seconds, and the
        # file threads unpack uploads)
        threading.Thread(target=sweep_dead_engines, name="engine-sweep", daemon=True).start()
        if self._runner is None:  # the sandboxed runner: its warm zygote starts meanwhile
            self.prewarming = threading.Thread(
                target=self._prewarm, name="engine-prewarm", daemon=True
            )
            self.prewarming.start()
        for submission_id in self.store.submission_ids(
            (StatusCode.PREPARATION, StatusCode.EXECUTION)
        ):
            await self._abandon(submission_id, "the engine stopped while this submission ran")
        self.workspaces.recover()
        for submission_id in self.store.submission_ids((StatusCode.WAITING,)):
            self.scheduler.submit(submission_id)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    def _prewarm(self) -> None:
        """Start the sandbox's warm zygote if a project's stage would use it (``warm.py``)."""
        commands: list[str] = []
        for folder in sorted(self.config.projects_dir.glob("*/")):
            if (folder / REQUIREMENTS).exists():
                continue  # its own interpreter: never warm
            try:
                project = projects.find_project(self.config.projects_dir, folder.name)
                if project.config_text is None:
                    continue
                source = f"{project.id}/config.json"
                names = projects.parse_config(project.config_text, source=source).get("scenarios")
                for name in names if isinstance(names, dict) else ():
                    scenario = projects.resolve_scenario(project.config_text, name, source=source)
                    commands += [stage.command for stage in scenario.stages if stage.command]
            except (ConfigError, CreationFailedError):
                continue  # a broken project is reported when a submission uses it
        prewarm(detect_sandbox().kind, commands)

    async def stop(self) -> None:
        """Cancel running submissions, wait for them, and release every thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for cancel in self._cancels.values():
            cancel.set()
        stuck = await self.scheduler.close(self.config.stop_seconds)
        for submission_id in stuck:
            self._record_internal(submission_id, "the runner did not stop when the engine did")
        self._runners.shutdown(wait=not stuck, cancel_futures=True)
        self._files.shutdown(wait=True)
        self.trash.stop()
        self.store.close()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_seconds)
            self.sweep()

    def sweep(self) -> None:
        """Expire workspaces by the clock; freed slots start waiting submissions."""
        if self.workspaces.sweep():
            self.scheduler.pump()

    # --- reading ------------------------------------------------------------------------

    def submission(self, submission_id: int) -> SubmissionRecord:
        record = self.store.get_submission(submission_id)
        if record is None:
            raise NotFoundError(f"submission {submission_id} not found")
        return record

    def stream_file(self, submission_id: int, stream: str) -> tuple[str, Path]:
        """The canonical name and file of one stream, or 404 (1001 / 1101)."""
        record = self.submission(submission_id)
        name = canonical_stream(stream)
        if (
            name is None
            or name not in record.streams
            or not self.store.stream_path(submission_id, name).is_file()
        ):
            raise StreamNotFoundError(f"submission {submission_id} has no stream {stream[:64]!r}")
        return name, self.store.stream_path(submission_id, name)

    async def read_file(self, path: Path, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
        """A stored file's bytes in chunks, read on the engine's own file threads."""
        with path.open("rb") as fp:
            while data := await self._in_files(fp.read, chunk):
                yield data

    # --- creating -------------------------------------------------------------------

    def new_staging(self) -> Path:
        return self.store.new_staging()

    async def create_submission(self, request: NewSubmission) -> int:
        """Check, unpack and record a submission; queue it unless its config is broken.

        Raises CreationFailedError (unknown project) or InvalidRequestError (bad
        archive); the staging folder is then removed.
        """
        try:
            project = projects.find_project(self.config.projects_dir, request.project_id)
            if request.has_source:
                await self._in_files(self._unpack, request.staging)
            return await self._record(request, project)
        except BaseException:
            self.trash.discard(request.staging)
            raise

    def _unpack(self, staging: Path) -> None:
        limits = UploadLimits(self.config.max_files, self.config.max_unpacked_bytes)
        with (staging / "streams" / "source").open("rb") as archive:
            unpack_workspace(archive, staging / "upload", limits)

    async def _record(self, request: NewSubmission, project: projects.Project) -> int:
        config = request.project_config
        if config is None:
            config = project.config_text
        source = f"{project.id}/config.json" if request.project_config is None else "project_config"
        scenario_name = None
        problem = project.problem if config is None else None
        if config is not None:
            try:
                scenario_name = projects.resolve_scenario(
                    config, request.scenario, source=source
                ).name
            except ConfigError as exc:
                problem = str(exc)
        finished = None
        streams = _sizes(request.staging / "streams", STREAM_NAMES)
        if problem is not None:
            _append(request.staging / "streams" / "debug_log", f"project error: {problem}")
            streams = _sizes(request.staging / "streams", STREAM_NAMES)
            finished = _skipped(StatusCode.PROJECT_ERROR)
        submission_id = self.store.create_submission(
            project_id=project.id,
            requested_scenario=request.scenario,
            scenario=scenario_name,
            config=config or "",
            created_at=self.clock(),
            staging=request.staging,
            streams=streams,
            finished=finished,
        )
        if finished is None:
            self.scheduler.submit(submission_id)
        return submission_id

    # --- running --------------------------------------------------------------------

    async def _execute(self, submission_id: int) -> None:
        """One submission on one slot; an engine fault on the way ends it as 20."""
        try:
            await self._prepare_run_record(submission_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("engine failed on submission %s", submission_id)
            reason = f"the engine failed: {type(exc).__name__}: {exc}"
            await self._finish_problem(
                submission_id, f"internal error: {reason}", StatusCode.INTERNAL_ERROR
            )

    async def _prepare_run_record(self, submission_id: int) -> None:
        """Prepare, run in a worker thread (which waits for a slot), record.

        The submission stays waiting (0) until its turn on a slot is granted (then 2:
        executing); if the engine stops before that, nothing of it ran and it waits again.
        """
        record = self.submission(submission_id)
        loop = asyncio.get_running_loop()
        try:
            spec, requirements = await self._in_files(self._prepare, record)
            if requirements is not None and not self.environments.is_ready(requirements):
                # built once per requirement set, on a runner thread: it may take minutes,
                # while younger submissions of ready projects take the free slots
                self.scheduler.step_aside(submission_id)
            environment = await loop.run_in_executor(
                self._runners, self.environments.ensure_for, requirements
            )
        except (ConfigError, CreationFailedError) as exc:
            reason = exc.api_message if isinstance(exc, CreationFailedError) else str(exc)
            await self._finish_problem(
                submission_id, f"project error: {reason}", StatusCode.PROJECT_ERROR
            )
            return
        if self._stopped:
            # The engine began stopping while this one was prepared: nothing ran yet,
            # so it waits again and runs after the next start.
            return
        spec = replace(spec, environment=environment)
        cancel = Cancel()
        turn = self.scheduler.turn(submission_id)
        self._cancels[submission_id] = cancel
        try:
            outcome = await loop.run_in_executor(self._runners, self._run, spec, cancel, turn)
        finally:
            self._cancels.pop(submission_id, None)
        if outcome is None:  # the engine stopped before its turn: it waits again (status 0)
            return  # (its upload is kept; the next start sets its work folder aside)
        finished, notes = _finished_from(outcome)
        sizes = await self._in_files(self._collect, submission_id, outcome, notes)
        self.store.finish_submission(submission_id, finished, sizes, self.clock())

    def _prepare(self, record: SubmissionRecord) -> tuple[RunSpec, Requirements | None]:
        """The run's spec over fresh folders, and its project's requirements (read once:
        raises EnvironmentBuildError, a 22, when they cannot be used)."""
        project = projects.find_project(self.config.projects_dir, record.project_id)
        source = f"{record.project_id}/config.json"
        scenario = projects.resolve_scenario(
            record.config, record.requested_scenario, source=source
        )
        work_dir = self.store.work_dir(record.id)
        if not self.trash.discard(work_dir):
            raise TreeError(f"submission {record.id}: its last work folder cannot be set aside")
        work_dir.mkdir(parents=True)
        upload_dir = self.store.upload_dir(record.id)
        upload_dir.mkdir(parents=True, exist_ok=True)
        spec = projects.build_run_spec(
            record.id, project, scenario, upload_dir=upload_dir, work_dir=work_dir
        )
        return spec, requirements_of(spec.project_dir, spec.project_id)

    def _run(self, spec: RunSpec, cancel: Cancel, turn: Turn) -> RunOutcome | str | None:
        """The runner's outcome, why there is none (an engine fault, status 20), or None:
        the engine stopped before the submission's turn came, and nothing of it ran."""
        try:
            if self._runner is None:
                return default_runner(spec, cancel, turn)
            turn.take()  # a runner of the caller's own runs once its slot is granted
            return self._runner(spec, cancel)
        except TurnAbortedError:
            return None
        except ImportError as exc:
            return f"the local runner is not available: {exc}"
        except Exception as exc:
            log.exception("runner failed on submission %s", spec.submission_id)
            return f"the runner failed: {type(exc).__name__}: {exc}"

    def _collect(
        self, submission_id: int, outcome: RunOutcome | str, notes: tuple[str, ...]
    ) -> dict[str, int]:
        """Move the runner's stream files next to the source; drop upload and work dirs."""
        streams = self.store.streams_dir(submission_id)
        work_dir = self.store.work_dir(submission_id)
        if isinstance(outcome, RunOutcome):
            for name, path in outcome.streams.items():
                moved = _move_stream(name, path, work_dir, streams / name)
                if not moved:
                    notes = (*notes, f"engine: ignored stream {name!r} from the runner")
        for note in notes:
            _append(streams / "debug_log", note)
        self._discard_folders(submission_id)
        return _sizes(streams, STREAM_NAMES)

    def _discard_folders(self, submission_id: int) -> None:
        """The run's folders go to the trash: the result never waits for their removal."""
        self.trash.discard(self.store.work_dir(submission_id))
        self.trash.discard(self.store.upload_dir(submission_id))

    async def _finish_problem(self, submission_id: int, reason: str, status: int) -> None:
        """Record ``status`` with ``reason`` in debug_log; a failure to write the note or
        set the folders aside is logged, and the status is recorded all the same."""

        def write() -> dict[str, int]:
            self._discard_folders(submission_id)
            return self._note(submission_id, reason)

        sizes = await self._in_files(write)
        self.store.finish_submission(submission_id, _skipped(status), sizes, self.clock())

    async def _abandon(self, submission_id: int, reason: str) -> None:
        await self._finish_problem(
            submission_id, f"internal error: {reason}", StatusCode.INTERNAL_ERROR
        )

    def _record_internal(self, submission_id: int, reason: str) -> None:
        sizes = self._note(submission_id, f"internal error: {reason}")
        self.store.finish_submission(
            submission_id, _skipped(StatusCode.INTERNAL_ERROR), sizes, self.clock()
        )

    def _note(self, submission_id: int, line: str) -> dict[str, int]:
        """Append ``line`` to debug_log; the streams' sizes. Never raises for the files:
        a submission whose folder is broken is still recorded as final (logged here)."""
        streams = self.store.streams_dir(submission_id)
        try:
            _append(streams / "debug_log", line)
        except OSError as exc:
            log.warning("submission %s: cannot write debug_log: %s", submission_id, exc)
        try:
            return _sizes(streams, STREAM_NAMES)
        except OSError as exc:
            log.warning("submission %s: cannot read its streams: %s", submission_id, exc)
            return {}

    async def offload(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking file work on the engine's file threads (never the event loop)."""
        return await self._in_files(func, *args)

    async def _in_files(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._files, functools.partial(func, *args))


def _finished_from(outcome: RunOutcome | str) -> tuple[Finished, tuple[str, ...]]:
    """The stored result of a run, and notes for debug_log when the outcome was odd."""
    if isinstance(outcome, str):
        return _skipped(StatusCode.INTERNAL_ERROR), (f"internal error: {outcome}",)
    notes: tuple[str, ...] = ()
    status = outcome.status
    if status not in FINAL_STATUSES:
        notes = (f"internal error: the runner reported status {status}, which is not final",)
        status = StatusCode.INTERNAL_ERROR
    by_name = {stage.name: stage for stage in outcome.stages}
    stages = tuple(
        StageRecord(
            name=name,
            skipped=by_name[name].skipped,
            time=max(0.0, float(by_name[name].time)),
            exit_code=by_name[name].exit_code,
            signal=by_name[name].signal,
            status_changed_to=by_name[name].status_changed_to,
        )
        if name in by_name
        else StageRecord(name, skipped=True)
        for name in STAGE_ORDER
    )
    return (
        Finished(
            status=status,
            stages=stages,
            score=outcome.score if outcome.score is None or math.isfinite(outcome.score) else None,
            time=max(0.0, float(outcome.time)),
            memory=max(0, int(outcome.memory)),
            signal=outcome.signal,
        ),
        notes,
    )


def _skipped(status: int) -> Finished:
    return Finished(status=status, stages=tuple(StageRecord(n, skipped=True) for n in STAGE_ORDER))


def _move_stream(name: str, path: Path, work_dir: Path, target: Path) -> bool:
    """Move one runner stream file into place if it is a known name and a plain file."""
    if name not in STREAM_NAMES or name == "source":
        return False
    try:
        real = path.resolve()
        if not real.is_relative_to(work_dir.resolve()) or path.is_symlink() or not real.is_file():
            return False
        if name == "debug_log" and target.exists():
            # Keep the engine's own notes: append the runner's log after them.
            with target.open("ab") as out, real.open("rb") as src:
                shutil.copyfileobj(src, out)
        else:
            real.replace(target)
    except OSError:
        return False
    return True


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fp:
        fp.write(text if text.endswith("\n") else text + "\n")


def _sizes(folder: Path, names: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    for name in names:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            found[name] = path.stat().st_size
    return found
