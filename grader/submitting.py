"""Running one archive on the engine: the driver that performs ``grader.policy``'s decisions.

Every step lands in SQLite as it happens: the row before the create call, the engine's
id under the same lock as the call (a kill orphans at most one submission), the final
result before it is graded. A rerun finds them there and reuses or follows them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from grader.api.client import ContainersClient
from grader.api.follow import ExecutionGate, SubmissionWatcher
from grader.api.models import StatusCode, Submission
from grader.archive import Archive
from grader.codec import from_json, to_json
from grader.config import Assignment
from grader.errors import EngineError
from grader.integrity import clean_debug_size, wants_debug_log
from grader.policy import (
    Create,
    Follow,
    GiveUp,
    Handle,
    Refusal,
    Reuse,
    Setback,
    after_create_error,
    after_engine_fault,
    after_follow_error,
    next_step,
    reuse_of,
)
from grader.state import State, StoredResult

STREAM_CAP = 200_000


class StoppedError(Exception):
    """Raised inside a student's coroutine when Ctrl-C stops new submissions."""


@dataclass(frozen=True)
class Executed:
    """A final engine answer for one archive, fresh or reused from SQLite."""

    submission: Submission
    result: StoredResult
    submission_id: int
    attempts: int


@dataclass(frozen=True)
class Target:
    """Where an archive goes: one student's assignment, and what identifies the run."""

    assignment: Assignment
    student_id: str
    key: str  # grader.pipeline.submission_key
    course_file: str  # course.toml, named by errors about the project
    deadline: float | None = None  # seconds to follow one submission (grader.deadlines)


class Submitter:
    """Submits archives for one run: reuse, create, follow, retry, as the policy says."""

    def __init__(
        self,
        *,
        state: State,
        client: ContainersClient,
        watcher: SubmissionWatcher,
        gate: ExecutionGate,
        engine: str,
        run_id: int,
        infra_retries: int,
        force: bool,
        stopping: asyncio.Event,
    ) -> None:
        self.state = state
        self.client = client
        self.watcher = watcher
        self.gate = gate
        self.engine = engine
        self.run_id = run_id
        self.budget = infra_retries + 1
        self.force = force
        self.stopping = stopping
        self.created = 0
        self.reused = 0
        # One create call in flight at a time: a kill can then orphan at most one
        # submission (sent, id not yet stored); creates take milliseconds anyway.
        self.create_lock = asyncio.Lock()
        self.key_locks: dict[str, asyncio.Lock] = {}
        # per project: the shortest debug log that raised no integrity flag in this run
        self.clean_debug_sizes: dict[str, int] = {}
        self.debug_locks: dict[str, asyncio.Lock] = {}

    async def execute(self, target: Target, archive: Archive) -> Executed | GiveUp:
        """The archive's final engine answer, or why there is none after every attempt."""
        # Two students with byte-identical workspaces run once: the second waits for the
        # first and reuses its result (with --force, only a result from this very run).
        async with self.key_locks.setdefault(target.key, asyncio.Lock()):
            last: Setback | None = None
            reuse, stored = self._stored(target.key)
            if isinstance(reuse, Reuse) and stored is not None:
                return self._reused(reuse, stored)
            if isinstance(reuse, Follow):
                followed = await self._follow(reuse.handle, target.deadline)
                if isinstance(followed, Executed):
                    return followed
                last = followed
            return await self._submit(target, archive, last)

    def reusable(self, key: str) -> Executed | None:
        """The final answer stored for ``key`` that this run reuses as it is (no archive
        needed: a rerun over an unchanged commit); None when ``execute`` must decide."""
        reuse, stored = self._stored(key)
        if isinstance(reuse, Reuse) and stored is not None:
            return self._reused(reuse, stored)
        return None

    def _stored(self, key: str) -> tuple[Reuse | Follow | None, StoredResult | None]:
        row = self.state.reusable_submission(self.engine, key)
        stored = self.state.result_for(row.id) if row is not None else None
        reuse = reuse_of(row, has_result=stored is not None, run_id=self.run_id, force=self.force)
        return reuse, stored

    def _reused(self, reuse: Reuse, stored: StoredResult) -> Executed:
        self.reused += 1
        submission = from_json(Submission, stored.result_json)
        return Executed(submission, stored, reuse.handle.engine_id, reuse.attempts)

    async def _submit(
        self, target: Target, archive: Archive, last: Setback | None
    ) -> Executed | GiveUp:
        """Create the submission (again after infrastructure failures) and follow it."""
        if self.stopping.is_set():
            raise StoppedError
        attempt = 1
        while True:
            step = next_step(attempt, self.budget, last)
            if isinstance(step, GiveUp):
                return step
            if isinstance(step, Follow):
                outcome = await self._follow(step.handle, target.deadline)
            else:
                outcome = await self._create(target, archive, step)
            if isinstance(outcome, Executed):
                return Executed(outcome.submission, outcome.result, outcome.submission_id, attempt)
            last = outcome
            attempt += 1

    async def _create(self, target: Target, archive: Archive, step: Create) -> Executed | Setback:
        assignment = target.assignment
        row_id = self.state.begin_submission(
            self.run_id,
            assignment.id,
            target.student_id,
            engine=self.engine,
            submission_key=target.key,
            archive_sha256=archive.sha256,
            project=assignment.project,
            scenario=assignment.scenario,
            attempt=step.attempt,
        )
        async with self.gate.slot():
            if self.stopping.is_set():
                self.state.submission_failed(row_id, "infra", "interrupted before submitting")
                raise StoppedError
            try:
                async with self.create_lock:
                    engine_id = await self.client.create_submission(
                        assignment.project, archive.data, scenario=assignment.scenario
                    )
                    self.state.submission_created(row_id, engine_id)
            except EngineError as exc:
                verdict = after_create_error(
                    exc,
                    project=assignment.project,
                    course_file=target.course_file,
                    assignment=assignment.id,
                )
                if verdict is None:
                    raise
                if isinstance(verdict, Refusal):
                    self.state.submission_failed(row_id, "infra", verdict.detail)
                    raise verdict.error from exc
                return self._setback(row_id, verdict)
            self.created += 1
            return await self._follow(Handle(row_id, engine_id), target.deadline)

    async def _follow(self, handle: Handle, deadline: float | None) -> Executed | Setback:
        """Wait for a created submission and store its result; a passing fault keeps its id.

        Past ``deadline`` (seconds) it is an engine failure: retried, then not graded.
        """
        try:
            submission = await self.watcher.wait(handle.engine_id, deadline)
            if submission.result.status.code == StatusCode.INTERNAL_ERROR:
                debug = await self._stream(submission, "debug_log")
                return self._setback(handle.row_id, after_engine_fault(handle, debug))
            stored = await self._collect(submission)
        except EngineError as exc:
            verdict = after_follow_error(exc, handle)
            if verdict is None:
                raise
            return self._setback(handle.row_id, verdict)
        status = submission.result.status
        self.state.submission_final(
            handle.row_id, status_code=status.code, status_name=status.name, result=stored
        )
        return Executed(submission, stored, handle.engine_id, 1)

    def _setback(self, row_id: int, setback: Setback) -> Setback:
        if setback.record is not None:
            self.state.submission_failed(row_id, *setback.record)
        return setback

    async def _collect(self, submission: Submission) -> StoredResult:
        """Fetch only the streams grading needs."""
        code = submission.result.status.code
        report = await self._stream(submission, "tests_report")
        build = ""
        if code == StatusCode.BUILD_ERROR or _stage_failed(submission, "build"):
            outputs = [
                await self._stream(submission, "stage_build_output"),
                await self._stream(submission, "stage_build_error"),
            ]
            build = "\n".join(filter(None, outputs))
        project = submission.project_id
        if project in self.clean_debug_sizes:
            debug = await self._debug_log(submission)
        else:
            # until a project has a clean log to measure by, its logs are read one at a
            # time: the first clean one spares the others the request
            async with self.debug_locks.setdefault(project, asyncio.Lock()):
                debug = await self._debug_log(submission)
        return StoredResult(to_json(submission), report, build, debug)

    async def _debug_log(self, submission: Submission) -> str:
        """The debug log when ``integrity.wants_debug_log`` asks for it and it says something."""
        project = submission.project_id
        if not wants_debug_log(submission, clean_size=self.clean_debug_sizes.get(project)):
            return ""
        debug = await self._stream(submission, "debug_log")
        size = clean_debug_size(submission, debug)
        if size is None:
            return debug
        # it says nothing: the yardstick for the next ones, and not kept
        self.clean_debug_sizes[project] = min(self.clean_debug_sizes.get(project, size), size)
        return ""

    async def _stream(self, submission: Submission, name: str) -> str:
        ref = submission.streams.get(name)
        if ref is None or ref.size == 0:
            return ""
        return await self.client.get_stream(submission.id, name, max_bytes=STREAM_CAP)


def _stage_failed(submission: Submission, stage: str) -> bool:
    found = submission.stages.get(stage)
    return bool(found and not found.skipped and (found.exit_code or 0) != 0)
