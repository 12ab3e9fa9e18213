"""`grader similarity COURSE_DIR -a A`: every pair of graded workspaces compared.

The workspaces compared are the ones graded: each roster student's latest stored
outcome names the commit its archive was built from, read again from the course's git
mirrors (no fetch when the mirror holds it) with the assignment's include/exclude
globs, as the archive was. Students whose archives had the same sha256 are
byte-identical and read once. The starter code (``[assignments.X] starter``) and the
project's own files (``projects/<project>/``, which the engine lays over every
workspace) are boilerplate: no match is ever made of them.

Writes ``OUT/<a>/similarity.csv`` and ``similarity.html``, stores the pairs at or above
``similarity_threshold`` (and the identical ones) for the dashboard, and rewrites the
dashboard. Nothing here prints or exits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from grader.archive import WorkspaceFile, matches
from grader.config import COURSE_FILE, Assignment, Course, load_course
from grader.errors import EXIT_NOT_GRADED, EXIT_OK, ArchiveError, ConfigError, SourceError
from grader.lock import course_lock
from grader.outputs import stored_outcomes
from grader.preflight import default_out_root
from grader.project_tests import read_project_files
from grader.records import StudentOutcome
from grader.reports.dashboard import write_dashboard
from grader.reports.similarity import (
    SIMILARITY_CSV,
    SIMILARITY_HTML,
    ComparedStudent,
    similarity_page,
    write_similarity_csv,
    write_similarity_page,
)
from grader.roster import Student, load_roster, repo_for
from grader.similarity import (
    PairScore,
    Steps,
    Workspace,
    common_limit,
    compare_all,
    fingerprinted,
    without_common,
)
from grader.sources import GitSources
from grader.state import State, StoredSimilarPair, open_state
from grader.winnowing import boilerplate_hashes, code_files, fingerprints

READ_CONCURRENCY = 4  # git reads at once


class QuietSteps:
    def start(self, what: str, total: int) -> None:
        pass

    def advance(self) -> None:
        pass


@dataclass(frozen=True)
class SimilarityResult:
    """What `grader similarity` found and wrote."""

    assignment: str
    compared: int
    pairs: tuple[PairScore, ...]
    threshold: float
    skipped: tuple[tuple[str, str], ...]  # (student, why their workspace was not compared)
    html: Path
    csv: Path

    @property
    def above(self) -> tuple[PairScore, ...]:
        """The pairs the dashboard shows: identical, or at least ``threshold`` similar."""
        return tuple(p for p in self.pairs if p.identical or p.similarity >= self.threshold)

    @property
    def exit_code(self) -> int:
        return EXIT_NOT_GRADED if self.skipped else EXIT_OK


def similarity(
    course_dir: Path,
    assignment_id: str,
    *,
    out_dir: Path | None = None,
    steps: Steps | None = None,
    now: datetime | None = None,
) -> SimilarityResult:
    """Compare every graded workspace of ``assignment_id`` with every other one."""
    steps = steps or QuietSteps()
    course = load_course(course_dir)
    assignment = course.assignment(assignment_id)
    roster = load_roster(course.roster)
    directory = (out_dir or default_out_root(course)) / assignment.id
    with course_lock(course.state_dir), open_state(course.state_dir) as state:
        outcomes = stored_outcomes(state, assignment, roster, course=course)
        graded = [o for o in outcomes if o.status == "graded" and o.commit]
        read, skipped = asyncio.run(_read(course, assignment, graded, steps))
        kept = without_common(read, common_limit(len(read)))
        scores = compare_all(kept, steps=steps)
        students = {o.student.student_id: _compared(o) for o in graded}
        csv_path = write_similarity_csv(scores, students, directory / SIMILARITY_CSV)
        page = similarity_page(assignment, kept, scores, skipped, steps)
        html_path = write_similarity_page(page, directory / SIMILARITY_HTML)
        result = SimilarityResult(
            assignment.id,
            len(read),
            tuple(scores),
            assignment.similarity_threshold,
            tuple(skipped),
            html_path,
            csv_path,
        )
        _store(state, assignment, result, students, now or datetime.now(UTC))
        write_dashboard(
            outcomes,
            assignment,
            directory,
            zone=course.timezone,
            similar=state.similar_pairs(assignment.id),
        )
    return result


def _compared(outcome: StudentOutcome) -> ComparedStudent:
    return ComparedStudent(outcome.student.student_id, outcome.student.name, outcome.commit or "")


def _store(
    state: State,
    assignment: Assignment,
    result: SimilarityResult,
    students: dict[str, ComparedStudent],
    now: datetime,
) -> None:
    state.replace_similar_pairs(
        assignment.id,
        [
            StoredSimilarPair(
                p.left,
                p.right,
                p.similarity,
                p.identical,
                students[p.left].commit,
                students[p.right].commit,
                now,
            )
            for p in result.above
        ],
    )


# reading ------------------------------------------------------------------------------


def in_workspace(files: Iterable[WorkspaceFile], assignment: Assignment) -> list[tuple[str, bytes]]:
    """(path, bytes) of the regular files the assignment's archive would hold."""
    return [
        (f.path, f.data)
        for f in files
        if not f.is_symlink
        and matches(f.path, assignment.include)
        and not matches(f.path, assignment.exclude)
        and ".git" not in f.path.split("/")
    ]


async def _read(
    course: Course, assignment: Assignment, graded: Sequence[StudentOutcome], steps: Steps
) -> tuple[list[Workspace], list[tuple[str, str]]]:
    sources = GitSources(course.state_dir / "mirrors")
    boilerplate = await _boilerplate(course, assignment, sources)
    return await _workspaces(course, assignment, graded, boilerplate, sources, steps)


async def _boilerplate(
    course: Course, assignment: Assignment, sources: GitSources
) -> frozenset[int]:
    """The k-grams of the project's files and of the starter code: never a match."""
    texts = dict(read_project_files(course.projects_dir / assignment.project))
    if assignment.starter:
        starter = Student("starter", repo=assignment.starter)
        repo = repo_for(starter, assignment.repo, base=course.root)
        try:
            history = await sources.history(repo, assignment.branch)
            files = in_workspace(await sources.files(repo, history[0].sha), assignment)
        except (SourceError, ArchiveError) as exc:
            raise ConfigError(
                f"the starter code cannot be read: {exc}",
                file=str(course.root / COURSE_FILE),
                where=f"assignments.{assignment.id}.starter",
            ) from exc
        for path, data in files:
            texts[f"starter/{path}"] = data.decode("utf-8", errors="replace")
    return await asyncio.to_thread(boilerplate_hashes, texts)


async def _workspaces(
    course: Course,
    assignment: Assignment,
    graded: Sequence[StudentOutcome],
    boilerplate: frozenset[int],
    sources: GitSources,
    steps: Steps,
) -> tuple[list[Workspace], list[tuple[str, str]]]:
    """Each graded student's workspace fingerprinted; (student, why) for those unreadable."""
    steps.start("reading workspaces", len(graded))
    limit = asyncio.Semaphore(READ_CONCURRENCY)
    by_digest: dict[str, asyncio.Task[Workspace]] = {}

    async def one(outcome: StudentOutcome) -> Workspace:
        student_id = outcome.student.student_id
        repo = repo_for(outcome.student, assignment.repo, base=course.root)
        async with limit:
            files = await sources.files(repo, outcome.commit or "")
        found = in_workspace(files, assignment)
        return await asyncio.to_thread(_fingerprint, student_id, found, boilerplate, outcome)

    async def shared(outcome: StudentOutcome) -> Workspace:
        digest = outcome.archive_sha256
        if not digest:
            return await one(outcome)
        if digest not in by_digest:
            by_digest[digest] = asyncio.ensure_future(one(outcome))
        first = await asyncio.shield(by_digest[digest])
        return Workspace(
            outcome.student.student_id,
            first.code,
            first.hashes,
            first.files,
            first.positions,
            first.digest,
        )

    async def counted(outcome: StudentOutcome) -> Workspace | tuple[str, str]:
        try:
            return await shared(outcome)
        except (SourceError, ArchiveError) as exc:
            detail = str(exc).replace(f"{course.root}/", "")
            return (outcome.student.student_id, f"commit {(outcome.commit or '')[:7]}: {detail}")
        finally:
            steps.advance()

    done = await asyncio.gather(*(counted(o) for o in graded))
    read = [w for w in done if isinstance(w, Workspace)]
    skipped = [w for w in done if not isinstance(w, Workspace)]
    return read, skipped


def _fingerprint(
    student_id: str,
    files: Sequence[tuple[str, bytes]],
    boilerplate: frozenset[int],
    outcome: StudentOutcome,
) -> Workspace:
    code = code_files(files)
    prints = [fingerprints(c.normalized) for c in code]
    return fingerprinted(student_id, code, prints, boilerplate, digest=outcome.archive_sha256)
