"""The orchestrator: every student flows fetch -> package -> submit -> follow -> grade.

Students move independently through bounded stages (git fetches, archive building and
engine slots each have their own limit), so fetching, packaging and execution overlap.
Every step lands in SQLite as it finishes; a rerun reuses what is already there and
never submits the same archive + project + scenario twice unless forced.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from grader.api.client import ContainersClient
from grader.api.faults import is_transient
from grader.api.follow import ExecutionGate, SubmissionWatcher
from grader.api.models import STUDENT_RESULTS, StatusCode, Submission
from grader.archive import Archive, build_archive
from grader.codec import from_json, to_json
from grader.config import COURSE_FILE, Assignment, Course
from grader.connect import EngineChoice, open_client
from grader.errors import (
    ArchiveError,
    ConfigError,
    CreationFailedError,
    EngineError,
    GraderError,
    InvalidRequestError,
    NotFoundError,
    SourceError,
    SubmissionTimeoutError,
    TestReportError,
)
from grader.records import Outcome, StudentOutcome
from grader.roster import Student, repo_for
from grader.scoring import grade_submission, parse_tests_report
from grader.sources import CommitChoice, GitSources, pick_commit_at, redact_url
from grader.state import State, StoredResult

GIT_CONCURRENCY = 4
STREAM_CAP = 200_000
GRADED: Mapping[int, tuple[Outcome, str]] = {
    StatusCode.BUILD_ERROR: (
        Outcome.BUILD_ERROR,
        "the code did not compile; tests could not run",
    ),
    StatusCode.RUNTIME_ERROR: (Outcome.RUNTIME_ERROR, "the program crashed while running"),
    StatusCode.TIME_LIMIT: (Outcome.TIME_LIMIT, "a stage ran past its time limit"),
    StatusCode.FAIL: (Outcome.FAIL, "some tests failed"),
    StatusCode.OK: (Outcome.OK, "every test passed"),
}
"""The engine's final statuses that are the student's result: outcome and reason."""


class Progress(Protocol):
    """Where the pipeline reports what it is doing (the CLI draws it; tests record it)."""

    def start(self, total: int) -> None: ...
    def step(self, assignment: str, student_id: str, stage: str) -> None: ...
    def finished(self, outcome: StudentOutcome) -> None: ...


class SilentProgress:
    def start(self, total: int) -> None:
        pass

    def step(self, assignment: str, student_id: str, stage: str) -> None:
        pass

    def finished(self, outcome: StudentOutcome) -> None:
        pass


@dataclass(frozen=True)
class GradeRequest:
    course: Course
    roster: Sequence[Student]
    assignments: tuple[str, ...]
    students: tuple[str, ...] = ()  # empty: everyone on the roster
    force: bool = False
    concurrency: int | None = None


@dataclass
class RunSummary:
    run_id: int
    outcomes: list[StudentOutcome] = field(default_factory=list)
    submissions_created: int = 0
    reused: int = 0
    possible_duplicates: int = 0
    interrupted: int = 0  # students left for the next run after Ctrl-C

    @property
    def not_graded(self) -> list[StudentOutcome]:
        return [o for o in self.outcomes if o.status != "graded"]


@dataclass(frozen=True)
class _Executed:
    """A final engine answer for one archive, fresh or reused from SQLite."""

    submission: Submission
    result: StoredResult
    submission_id: int
    attempts: int


class _StoppedError(Exception):
    """Raised inside a student's coroutine when Ctrl-C stops new submissions."""


@dataclass(frozen=True)
class _Retry:
    """One attempt failed for a reason that is not the student's.

    ``follow`` keeps the engine's id when the submission exists there and only reading
    its result failed: the next attempt (or the next run) follows it instead of creating
    the same submission again.
    """

    reason: str
    follow: tuple[int, int] | None = None  # (state row id, engine id)


@dataclass(frozen=True)
class _Infrastructure:
    reason: str
    attempts: int


def submission_key(
    archive_sha256: str, project: str, scenario: str | None, project_digest: str
) -> str:
    """What makes two submissions the same: content, project, scenario, project files."""
    text = "\0".join((archive_sha256, project, scenario or "", project_digest))
    return hashlib.sha256(text.encode()).hexdigest()


def project_digest(projects_dir: Path, project: str) -> str:
    """Hash of the local project folder (instructor tests), or '' when it is not local."""
    root = projects_dir / project
    if not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def lateness_of(choice: CommitChoice, assignment: Assignment, student_id: str) -> timedelta:
    return max(timedelta(), choice.at - assignment.due_for(student_id))


class Pipeline:
    """One grading run over a course: built once, then ``run`` drives every student."""

    def __init__(
        self,
        request: GradeRequest,
        state: State,
        engine: EngineChoice,
        *,
        progress: Progress | None = None,
    ):
        self.request = request
        self.course = request.course
        self.state = state
        self.engine = engine
        self.progress = progress or SilentProgress()
        self.stopping = asyncio.Event()  # set on Ctrl-C: create nothing new
        self.sources = GitSources(self.course.state_dir / "mirrors")
        self.git_limit = asyncio.Semaphore(GIT_CONCURRENCY)
        # Reading a fetched commit waits only behind other reads, never behind every
        # student's fetch: the first archive is ready after one fetch, not after all.
        self.read_limit = asyncio.Semaphore(GIT_CONCURRENCY)
        # One create call in flight at a time: a kill can then orphan at most one
        # submission (sent, id not yet stored); creates take milliseconds anyway.
        self.create_lock = asyncio.Lock()
        self.digests = {
            a: project_digest(self.course.projects_dir, self.course.assignment(a).project)
            for a in request.assignments
        }

    async def run(self) -> RunSummary:
        run_id = self.state.start_run(
            engine=self.engine.label, assignments=self.request.assignments
        )
        summary = RunSummary(run_id)
        jobs = [
            (self.course.assignment(a), s)
            for a in self.request.assignments
            for s in self.request.roster
            if not self.request.students or s.student_id in self.request.students
        ]
        self.progress.start(len(jobs))
        async with open_client(
            self.engine, self.course, concurrency=self.request.concurrency
        ) as client:
            # one cheap call first: an unreachable engine or a refused token stops the run
            # here (exit 3) instead of turning every student into "not graded"
            await client.test()
            watcher = SubmissionWatcher(
                client, timeout=self.course.engine.submission_timeout.total_seconds()
            )
            gate = ExecutionGate(client, self.request.concurrency or self.course.engine.concurrency)
            context = _RunContext(self, summary, client, watcher, gate)
            try:
                # A TaskGroup, not gather: when one student's coroutine raises (a 401 stops
                # the run), the others are cancelled before the client closes under them.
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(context.grade(a, s)) for a, s in jobs]
            except BaseExceptionGroup as errors:
                raise _first_grader_error(errors) from None
            finally:
                await watcher.aclose()
            summary.possible_duplicates = client.counters.ambiguous_creates
        results = [task.result() for task in tasks]
        summary.outcomes = [r for r in results if r is not None]
        summary.interrupted = len(results) - len(summary.outcomes)
        status = "interrupted" if summary.interrupted else "complete"
        if status == "complete" and summary.not_graded:
            status = "partial"
        self.state.finish_run(run_id, status=status, summary=f"{len(results)} students")
        return summary


class _RunContext:
    """Per-run collaborators shared by every student's coroutine."""

    def __init__(
        self,
        pipeline: Pipeline,
        summary: RunSummary,
        client: ContainersClient,
        watcher: SubmissionWatcher,
        gate: ExecutionGate,
    ):
        self.p = pipeline
        self.summary = summary
        self.client = client
        self.watcher = watcher
        self.gate = gate
        self.key_locks: dict[str, asyncio.Lock] = {}

    async def grade(self, assignment: Assignment, student: Student) -> StudentOutcome | None:
        """Grade one student and store the outcome; None when the run was interrupted first."""
        try:
            outcome = await self._grade(assignment, student)
        except _StoppedError:
            return None
        self.p.state.record_grade(
            self.summary.run_id,
            assignment.id,
            student.student_id,
            status=outcome.status,
            score=outcome.grade.score if outcome.grade and outcome.status == "graded" else None,
            outcome_json=to_json(outcome),
        )
        self.p.progress.finished(outcome)
        return outcome

    async def _grade(self, assignment: Assignment, student: Student) -> StudentOutcome:
        blank = StudentOutcome.blank(student, assignment)
        if student.problem:
            where = f"{self.p.course.roster.name}:{student.line}"
            return blank.not_graded(Outcome.INVALID_ROSTER_ROW, f"{where}: {student.problem}")
        step = self.p.progress.step
        try:
            step(assignment.id, student.student_id, "fetch")
            choice, repo = await self._choose_commit(assignment, student)
            if choice is None:
                cutoff = assignment.cutoff_for(student.student_id)
                return blank.not_graded(
                    Outcome.NO_COMMIT, f"no commit at or before {cutoff:%Y-%m-%d %H:%M} UTC"
                )
            blank = _with_commit(blank, choice, assignment)
            step(assignment.id, student.student_id, "package")
            archive = await self._package(assignment, repo, choice)
        except SourceError as exc:
            # the outcome names the kind; the reason says what exactly
            return blank.not_graded(Outcome(exc.kind), self._course_relative(exc.detail))
        except ArchiveError as exc:
            return blank.not_graded(Outcome.ARCHIVE_REJECTED, self._course_relative(str(exc)))
        blank = replace(blank, archive_sha256=archive.sha256)
        step(assignment.id, student.student_id, "submit")
        try:
            executed = await self._execute(assignment, student, archive)
        except ArchiveError as exc:
            return blank.not_graded(Outcome.ARCHIVE_REJECTED, str(exc))
        if isinstance(executed, _Infrastructure):
            return replace(blank, attempts=executed.attempts).not_graded(
                Outcome.INFRASTRUCTURE, executed.reason
            )
        step(assignment.id, student.student_id, "grade")
        return _graded(blank, executed, assignment)

    def _course_relative(self, text: str) -> str:
        """Messages reach students: paths inside the course folder are shown relative to it."""
        return text.replace(f"{self.p.course.root}/", "")

    async def _choose_commit(
        self, assignment: Assignment, student: Student
    ) -> tuple[CommitChoice | None, str]:
        repo = repo_for(student, assignment.repo, base=self.p.course.root)
        async with self.p.git_limit:
            commits = await self.p.sources.history(repo, assignment.branch)
        # the address may carry credentials: SQLite only ever sees it redacted
        stored_repo = redact_url(repo)
        first_seen = self.p.state.record_commits(
            stored_repo, [(c.sha, c.committed_at) for c in commits]
        )
        choice = pick_commit_at(
            commits,
            assignment.cutoff_for(student.student_id),
            clock=assignment.clock,
            first_seen=first_seen,
        )
        if choice is not None:
            self.p.state.record_source(
                self.summary.run_id,
                assignment.id,
                student.student_id,
                repo=stored_repo,
                sha=choice.commit.sha,
                decided_at=choice.at,
                clock=choice.clock,
                reason=choice.reason,
            )
        return choice, repo

    async def _package(self, assignment: Assignment, repo: str, choice: CommitChoice) -> Archive:
        async with self.p.read_limit:
            files = await self.p.sources.files(repo, choice.commit.sha)
        archive = await asyncio.to_thread(
            build_archive,
            files,
            include=assignment.include,
            exclude=assignment.exclude,
            max_bytes=assignment.max_archive_bytes,
        )
        self.p.state.record_archive(
            archive.sha256, size=archive.size, file_count=archive.file_count
        )
        return archive

    async def _execute(
        self, assignment: Assignment, student: Student, archive: Archive
    ) -> _Executed | _Infrastructure:
        key = submission_key(
            archive.sha256, assignment.project, assignment.scenario, self.p.digests[assignment.id]
        )
        # Two students with byte-identical workspaces run once: the second waits for the
        # first and reuses its result (with --force, only a result from this very run).
        async with self.key_locks.setdefault(key, asyncio.Lock()):
            reused = await self._reuse(key, this_run_only=self.p.request.force)
            if isinstance(reused, _Executed):
                return reused
            return await self._submit(key, assignment, student, archive, pending=reused)

    async def _submit(
        self,
        key: str,
        assignment: Assignment,
        student: Student,
        archive: Archive,
        *,
        pending: _Retry | None = None,
    ) -> _Executed | _Infrastructure:
        """Create the submission (again after infrastructure failures) and follow it."""
        state, engine = self.p.state, self.p.engine.label
        if self.p.stopping.is_set():
            raise _StoppedError
        reasons: list[str] = []
        budget = self.p.course.engine.infra_retries + 1
        for attempt in range(1, budget + 1):
            if pending is not None and pending.follow is not None:
                outcome = await self._follow(*pending.follow)
            else:
                row_id = state.begin_submission(
                    self.summary.run_id,
                    assignment.id,
                    student.student_id,
                    engine=engine,
                    submission_key=key,
                    archive_sha256=archive.sha256,
                    project=assignment.project,
                    scenario=assignment.scenario,
                    attempt=attempt,
                )
                outcome = await self._attempt(row_id, assignment, archive)
            if isinstance(outcome, _Executed):
                return _Executed(outcome.submission, outcome.result, outcome.submission_id, attempt)
            pending = outcome
            reasons.append(outcome.reason)
        return _Infrastructure(f"{budget} attempts failed; last: {reasons[-1]}", budget)

    async def _reuse(self, key: str, *, this_run_only: bool) -> _Executed | _Retry | None:
        """A stored final result, or follow a submission created before a crash."""
        row = self.p.state.reusable_submission(self.p.engine.label, key)
        if row is None or row.engine_id is None:
            return None
        if this_run_only and row.run_id != self.summary.run_id:
            return None
        if row.state == "final":
            stored = self.p.state.result_for(row.id)
            if stored is not None:
                self.summary.reused += 1
                submission = from_json(Submission, stored.result_json)
                return _Executed(submission, stored, row.engine_id, row.attempt)
        return await self._follow(row.id, row.engine_id)

    async def _attempt(
        self, row_id: int, assignment: Assignment, archive: Archive
    ) -> _Executed | _Retry:
        async with self.gate.slot():
            if self.p.stopping.is_set():
                self.p.state.submission_failed(row_id, "infra", "interrupted before submitting")
                raise _StoppedError
            try:
                async with self.p.create_lock:
                    engine_id = await self.client.create_submission(
                        assignment.project, archive.data, scenario=assignment.scenario
                    )
                    self.p.state.submission_created(row_id, engine_id)
            except InvalidRequestError as exc:
                # the engine refused this student's archive (400/10): that student only
                self.p.state.submission_failed(row_id, "infra", str(exc))
                raise ArchiveError(f"the engine refused the workspace: {exc.api_message}") from exc
            except CreationFailedError as exc:
                self.p.state.submission_failed(row_id, "infra", str(exc))
                raise ConfigError(
                    f"the engine cannot create submissions for project {assignment.project!r}: "
                    f"{exc.api_message}",
                    file=str(self.p.course.root / COURSE_FILE),
                    where=f"assignments.{assignment.id}.project",
                ) from exc
            except EngineError as exc:
                if not is_transient(exc, polling=False):
                    raise
                self.p.state.submission_failed(row_id, "infra", str(exc))
                return _Retry(str(exc))
            self.summary.submissions_created += 1
            return await self._follow(row_id, engine_id)

    async def _follow(self, row_id: int, engine_id: int) -> _Executed | _Retry:
        """Wait for a created submission and store its result; a passing fault keeps its id."""
        try:
            submission = await self.watcher.wait(engine_id)
            if submission.result.status.code == StatusCode.INTERNAL_ERROR:
                debug = await self._stream(submission, "debug_log")
                detail = f"engine internal error (status 20) on submission {engine_id}"
                self.p.state.submission_failed(row_id, "infra", f"{detail}: {debug[:500]}")
                return _Retry(detail)
            stored = await self._collect(submission)
        except NotFoundError as exc:
            self.p.state.submission_failed(row_id, "lost", str(exc))
            return _Retry(f"the engine no longer knows submission {engine_id}")
        except SubmissionTimeoutError as exc:
            self.p.state.submission_failed(row_id, "infra", str(exc))
            return _Retry(f"engine timeout: {exc}")
        except EngineError as exc:
            if not is_transient(exc, polling=False):
                raise
            # the submission exists on the engine: read it again rather than create it again
            return _Retry(f"reading submission {engine_id} failed: {exc}", (row_id, engine_id))
        status = submission.result.status
        self.p.state.submission_final(
            row_id, status_code=status.code, status_name=status.name, result=stored
        )
        return _Executed(submission, stored, engine_id, 1)

    async def _collect(self, submission: Submission) -> StoredResult:
        """Fetch only the streams grading needs."""
        code = submission.result.status.code
        report = await self._stream(submission, "tests_report")
        build = ""
        if code == StatusCode.BUILD_ERROR or _stage_failed(submission, "build"):
            build = "\n".join(
                filter(
                    None,
                    [
                        await self._stream(submission, "stage_build_output"),
                        await self._stream(submission, "stage_build_error"),
                    ],
                )
            )
        debug = ""
        if code not in (StatusCode.FAIL, StatusCode.OK):
            debug = await self._stream(submission, "debug_log")
        return StoredResult(to_json(submission), report, build, debug)

    async def _stream(self, submission: Submission, name: str) -> str:
        ref = submission.streams.get(name)
        if ref is None or ref.size == 0:
            return ""
        return await self.client.get_stream(submission.id, name, max_bytes=STREAM_CAP)


def _first_grader_error(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that stopped a run, as one exception: ours if any, else the whole group."""
    ours = errors.subgroup(lambda exc: isinstance(exc, GraderError))
    if ours is None:
        return errors
    found: BaseException = ours
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


def _stage_failed(submission: Submission, stage: str) -> bool:
    found = submission.stages.get(stage)
    return bool(found and not found.skipped and (found.exit_code or 0) != 0)


def _with_commit(
    outcome: StudentOutcome, choice: CommitChoice, assignment: Assignment
) -> StudentOutcome:
    return replace(
        outcome,
        commit=choice.commit.sha,
        commit_reason=choice.reason,
        committed_at=choice.at,
        lateness=lateness_of(choice, assignment, outcome.student.student_id),
    )


def _graded(outcome: StudentOutcome, executed: _Executed, assignment: Assignment) -> StudentOutcome:
    result = executed.submission.result
    code = result.status.code
    outcome = replace(
        outcome,
        submission_id=executed.submission_id,
        engine_status=result.status.name,
        build_output=executed.result.build_output,
        debug_log=executed.result.debug_log,
        attempts=executed.attempts,
    )
    if code == StatusCode.PROJECT_ERROR:
        reason = "the assignment's project configuration is broken (instructor: see debug log)"
        return outcome.not_graded(Outcome.PROJECT_ERROR, reason)
    if code not in STUDENT_RESULTS:
        reason = f"the engine ended with status {code} ({result.status.name})"
        return outcome.not_graded(Outcome.engine_status(code), reason)
    try:
        tests = parse_tests_report(executed.result.tests_report or "[]")
    except TestReportError as exc:
        # the report comes from the project's test stage, not the student: not a grade
        return outcome.not_graded(Outcome.UNREADABLE_REPORT, str(exc))
    grade = grade_submission(
        tests, assignment, engine_score=result.score, lateness=outcome.lateness
    )
    what, reason = GRADED[code]
    return replace(outcome, status="graded", outcome=what, reason=reason, grade=grade)
