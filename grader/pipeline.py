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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from grader.api.follow import ExecutionGate, SubmissionWatcher
from grader.api.models import STUDENT_RESULTS, StatusCode, Submission
from grader.archive import Archive, build_archive, packing_key
from grader.codec import to_json
from grader.commits import when_text
from grader.config import COURSE_FILE, Assignment, Course
from grader.connect import EngineChoice, open_client
from grader.deadlines import deadline_for, stage_limits
from grader.errors import ArchiveError, GraderError, SourceError, TestReportError
from grader.integrity import evidence_of, integrity_flags
from grader.policy import GiveUp
from grader.project_tests import defined_test_names, read_project_files
from grader.records import Outcome, StudentOutcome, TestOutcome
from grader.roster import Student, repo_for
from grader.scoring import grade_submission, parse_tests_report
from grader.scoring.points import is_glob
from grader.sources import CommitChoice, GitSources, pick_commit_at, redact_url
from grader.state import PackedFrom, State
from grader.submitting import Executed, StoppedError, Submitter, Target

GIT_CONCURRENCY = 4
PREVIEW_CUTOFF = datetime.max.replace(tzinfo=UTC)  # a preview takes the latest commit
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
    preview: bool = False  # latest commits, no deadline, nothing stored as a grade


@dataclass
class RunSummary:
    run_id: int
    outcomes: list[StudentOutcome] = field(default_factory=list)
    submissions_created: int = 0
    reused: int = 0
    archives_built: int = 0  # commits read and packaged (an unchanged one is not)
    possible_duplicates: int = 0
    interrupted: int = 0  # students left for the next run after Ctrl-C

    @property
    def not_graded(self) -> list[StudentOutcome]:
        return [o for o in self.outcomes if o.status != "graded"]


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


def project_test_names(course: Course, assignment: Assignment) -> frozenset[str]:
    """The tests the assignment's project defines: in its local files, or as exact rules."""
    files = read_project_files(course.projects_dir / assignment.project)
    exact = {r.pattern for r in assignment.tests if not is_glob(r.pattern)}
    return defined_test_names(files) | exact


MAX_CONFIG_BYTES = 1024 * 1024


def project_config(projects_dir: Path, project: str) -> str | None:
    """``projects/<id>/config.json`` as text; None when this machine has no usable one."""
    try:
        with (projects_dir / project / "config.json").open("rb") as fp:
            raw = fp.read(MAX_CONFIG_BYTES + 1)
        return raw.decode("utf-8") if len(raw) <= MAX_CONFIG_BYTES else None
    except (OSError, UnicodeDecodeError):
        return None


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
        self.archives_built = 0
        self.packings = {
            a: packing_key(
                self.course.assignment(a).include,
                self.course.assignment(a).exclude,
                self.course.assignment(a).max_archive_bytes,
            )
            for a in request.assignments
        }
        self.digests = {
            a: project_digest(self.course.projects_dir, self.course.assignment(a).project)
            for a in request.assignments
        }
        # the tests each project defines, for the integrity flags
        self.defined = {
            a: project_test_names(self.course, self.course.assignment(a))
            for a in request.assignments
        }
        self.limits = {
            a: stage_limits(
                project_config(self.course.projects_dir, self.course.assignment(a).project),
                self.course.assignment(a).scenario,
            )
            for a in request.assignments
        }
        self.deadlines = {
            a: deadline_for(
                self.course.engine,
                self.course.assignment(a).scenario,
                project_config(self.course.projects_dir, self.course.assignment(a).project),
            ).total_seconds()
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
            watcher = SubmissionWatcher(client)  # each wait gets its assignment's deadline
            submitter = Submitter(
                state=self.state,
                client=client,
                watcher=watcher,
                gate=ExecutionGate(
                    client, self.request.concurrency or self.course.engine.concurrency
                ),
                engine=self.engine.label,
                run_id=run_id,
                infra_retries=self.course.engine.infra_retries,
                force=self.request.force,
                stopping=self.stopping,
            )
            try:
                # A TaskGroup, not gather: when one student's coroutine raises (a 401 stops
                # the run), the others are cancelled before the client closes under them.
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self._grade(a, s, submitter)) for a, s in jobs]
            except BaseExceptionGroup as errors:
                raise _first_grader_error(errors) from None
            finally:
                await watcher.aclose()
            summary.possible_duplicates = client.counters.ambiguous_creates
        summary.submissions_created, summary.reused = submitter.created, submitter.reused
        summary.archives_built = self.archives_built
        results = [task.result() for task in tasks]
        summary.outcomes = [r for r in results if r is not None]
        summary.interrupted = len(results) - len(summary.outcomes)
        status = "interrupted" if summary.interrupted else "complete"
        if status == "complete" and summary.not_graded:
            status = "partial"
        kind = "preview of " if self.request.preview else ""
        self.state.finish_run(run_id, status=status, summary=f"{kind}{len(results)} students")
        return summary

    async def _grade(
        self, assignment: Assignment, student: Student, submitter: Submitter
    ) -> StudentOutcome | None:
        """Grade one student and store the outcome; None when the run was interrupted first."""
        try:
            outcome = await self._outcome(assignment, student, submitter)
        except StoppedError:
            return None
        if self.request.preview:  # a preview is never a grade: the gradebook never sees it
            self.progress.finished(outcome)
            return outcome
        self.state.record_grade(
            submitter.run_id,
            assignment.id,
            student.student_id,
            status=outcome.status,
            score=outcome.grade.score if outcome.grade and outcome.status == "graded" else None,
            outcome_json=to_json(outcome),
        )
        self.progress.finished(outcome)
        return outcome

    async def _outcome(
        self, assignment: Assignment, student: Student, submitter: Submitter
    ) -> StudentOutcome:
        blank = StudentOutcome.blank(student, assignment)
        if student.problem:
            where = f"{self.course.roster.name}:{student.line}"
            return blank.not_graded(Outcome.INVALID_ROSTER_ROW, f"{where}: {student.problem}")
        step = self.progress.step
        try:
            step(assignment.id, student.student_id, "fetch")
            choice, repo = await self._choose_commit(assignment, student, submitter.run_id)
            if choice is None:
                cutoff = assignment.cutoff_for(student.student_id)
                cutoff_text = when_text(cutoff, self.course.timezone)
                return blank.not_graded(Outcome.NO_COMMIT, f"no commit at or before {cutoff_text}")
            blank = _with_commit(blank, choice, assignment)
            if self.request.preview:
                blank = replace(blank, lateness=timedelta())  # the deadline is not here yet
            step(assignment.id, student.student_id, "package")
            packed = PackedFrom(redact_url(repo), choice.commit.sha, self.packings[assignment.id])
            # an unchanged commit whose stored result is reused needs no reading or packaging
            prepared = self._reusable(assignment, packed, submitter) or await self._package(
                assignment, repo, packed
            )
        except SourceError as exc:
            # the outcome names the kind; the reason says what exactly
            return blank.not_graded(Outcome(exc.kind), self._course_relative(exc.detail))
        except ArchiveError as exc:
            return blank.not_graded(Outcome.ARCHIVE_REJECTED, self._course_relative(str(exc)))
        step(assignment.id, student.student_id, "submit")
        if isinstance(prepared, Archive):
            blank = replace(blank, archive_sha256=prepared.sha256)
            target = Target(
                assignment,
                student.student_id,
                self._key(assignment, prepared.sha256),
                str(self.course.root / COURSE_FILE),
                self.deadlines[assignment.id],
            )
            try:
                executed = await submitter.execute(target, prepared)
            except ArchiveError as exc:
                return blank.not_graded(Outcome.ARCHIVE_REJECTED, str(exc))
        else:
            sha256, executed = prepared
            blank = replace(blank, archive_sha256=sha256)
        if isinstance(executed, GiveUp):
            return replace(blank, attempts=executed.attempts).not_graded(
                Outcome.INFRASTRUCTURE, executed.reason
            )
        step(assignment.id, student.student_id, "grade")
        return _graded(
            blank, executed, assignment, self.defined[assignment.id], self.limits[assignment.id]
        )

    def _key(self, assignment: Assignment, archive_sha256: str) -> str:
        return submission_key(
            archive_sha256, assignment.project, assignment.scenario, self.digests[assignment.id]
        )

    def _reusable(
        self, assignment: Assignment, packed: PackedFrom, submitter: Submitter
    ) -> tuple[str, Executed] | None:
        """The archive hash this commit had last time, and the stored result reused for it."""
        sha256 = self.state.packed_archive(packed)
        if sha256 is None:
            return None
        executed = submitter.reusable(self._key(assignment, sha256))
        return (sha256, executed) if executed is not None else None

    def _course_relative(self, text: str) -> str:
        """Messages reach students: paths inside the course folder are shown relative to it."""
        return text.replace(f"{self.course.root}/", "")

    async def _choose_commit(
        self, assignment: Assignment, student: Student, run_id: int
    ) -> tuple[CommitChoice | None, str]:
        repo = repo_for(student, assignment.repo, base=self.course.root)
        async with self.git_limit:
            commits = await self.sources.history(repo, assignment.branch)
        # the address may carry credentials: SQLite only ever sees it redacted
        stored_repo = redact_url(repo)
        first_seen = self.state.record_commits(
            stored_repo, [(c.sha, c.committed_at) for c in commits]
        )
        cutoff = (
            PREVIEW_CUTOFF if self.request.preview else assignment.cutoff_for(student.student_id)
        )
        choice = pick_commit_at(
            commits,
            cutoff,
            clock=assignment.clock,
            first_seen=first_seen,
            zone=self.course.timezone,
        )
        if choice is not None:
            self.state.record_source(
                run_id,
                assignment.id,
                student.student_id,
                repo=stored_repo,
                sha=choice.commit.sha,
                decided_at=choice.at,
                clock=choice.clock,
                reason=choice.reason,
            )
        return choice, repo

    async def _package(self, assignment: Assignment, repo: str, packed: PackedFrom) -> Archive:
        async with self.read_limit:
            files = await self.sources.files(repo, packed.sha)
        archive = await asyncio.to_thread(
            build_archive,
            files,
            include=assignment.include,
            exclude=assignment.exclude,
            max_bytes=assignment.max_archive_bytes,
        )
        self.archives_built += 1
        self.state.record_archive(
            archive.sha256, size=archive.size, file_count=archive.file_count, packed=packed
        )
        return archive


def _first_grader_error(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that stopped a run, as one exception: ours if any, else the whole group."""
    ours = errors.subgroup(lambda exc: isinstance(exc, GraderError))
    if ours is None:
        return errors
    found: BaseException = ours
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


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


def _graded(
    outcome: StudentOutcome,
    executed: Executed,
    assignment: Assignment,
    defined: frozenset[str],
    stage_limits: Mapping[str, float],
) -> StudentOutcome:
    result = executed.submission.result
    code = result.status.code

    def flagged(tests: list[TestOutcome]) -> StudentOutcome:
        evidence = evidence_of(
            executed.submission,
            tests,
            report_text=executed.result.tests_report,
            debug_log=executed.result.debug_log,
            defined=defined,
            report_expected=bool(assignment.tests),
        )
        return replace(outcome, flags=integrity_flags(evidence))

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
        return flagged([]).not_graded(Outcome.PROJECT_ERROR, reason)
    if code not in STUDENT_RESULTS:
        reason = f"the engine ended with status {code} ({result.status.name})"
        return flagged([]).not_graded(Outcome.engine_status(code), reason)
    try:
        tests = parse_tests_report(executed.result.tests_report or "[]")
    except TestReportError as exc:
        # the report comes from the project's test stage, not the student: not a grade
        return flagged([]).not_graded(Outcome.UNREADABLE_REPORT, str(exc))
    grade = grade_submission(
        tests, assignment, engine_score=result.score, lateness=outcome.lateness, defined=defined
    )
    what, reason = GRADED[code]
    if what == Outcome.OK and any(t.status != "ok" for t in grade.tests):
        # the engine saw nothing wrong, but the report lacks tests the rules expect
        what, reason = Outcome.FAIL, "the tests report lacks tests the assignment expects"
    if what == Outcome.TIME_LIMIT:
        reason = time_limit_reason(executed.submission, stage_limits)
    return replace(flagged(tests), status="graded", outcome=what, reason=reason, grade=grade)


def time_limit_reason(submission: Submission, limits: Mapping[str, float]) -> str:
    """Which stage ran past its limit, and the limit (from the project's config.json)."""
    stopped = [
        name
        for name, stage in submission.stages.items()
        if stage.status is not None and stage.status.code == StatusCode.TIME_LIMIT
    ]
    name = stopped[0] if stopped else _last_stage_run(submission)
    if not name:
        return GRADED[StatusCode.TIME_LIMIT][1]
    limit = limits.get(name)
    limit_text = f" of {limit:g} s" if limit is not None else ""
    return (
        f"the {name} stage was stopped at its time limit{limit_text}; the tests that had not "
        "finished by then did not run"
    )


def _last_stage_run(submission: Submission) -> str:
    ran = [name for name, stage in submission.stages.items() if not stage.skipped]
    return ran[-1] if ran else ""
