"""`grader check COURSE_DIR -a A [--runs N]`: an assignment checked before release.

The instructor's reference solution and starter code (``[assignments.X] reference`` and
``starter``: folders, bundles or repositories, relative to the course folder) are graded
like students, ``runs`` times each with ``--force``, on the engine `grader grade` would
use; the verdicts (``grader.checks``) are pure. Deadlines do not apply to them, and
their grades go to a state of their own (``.grader/check/``), never into the course's
gradebook or history. Nothing here prints or exits.
"""

from __future__ import annotations

import asyncio
import configparser
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from grader.checks import (
    Finding,
    Limits,
    SolutionRun,
    TestRun,
    judge_flaky,
    judge_score,
    judge_times,
)
from grader.config import Course, LatePolicy, load_course
from grader.connect import EngineChoice, choose_engine
from grader.deadlines import stage_limits
from grader.errors import EXIT_NOT_GRADED, EXIT_OK, ConfigError
from grader.lock import course_lock
from grader.pipeline import GradeRequest, Pipeline, project_config
from grader.preflight import check_projects
from grader.project_tests import read_project_files
from grader.records import StudentOutcome
from grader.roster import Student
from grader.state import open_state

CHECK_STATE = "check"  # under .grader/: the check's own grades
NO_DEADLINE = datetime(9000, 1, 1, tzinfo=UTC)  # a solution is never late
TEST_LIMIT_KEY = "grader_test_timeout"  # grader_harness's per-test limit in pytest.ini


@dataclass(frozen=True)
class CheckReport:
    """Every finding of one `grader check`; it passes when every finding holds."""

    assignment: str
    runs: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_NOT_GRADED


def check(
    course_dir: Path, assignment_id: str, *, runs: int = 1, engine_url: str | None = None
) -> CheckReport:
    """Grade the reference and starter ``runs`` times each and judge what came back."""
    if runs < 1:
        raise ConfigError(f"--runs must be 1 or more, not {runs}")
    course = load_course(course_dir)
    assignment = course.assignment(assignment_id)
    expected = {
        label: (path, score)
        for label, path, score in (
            ("reference", assignment.reference, assignment.max_points),
            ("starter", assignment.starter, assignment.starter_score),
        )
        if path
    }
    if not expected:
        raise ConfigError(
            f"nothing to check: set reference (and starter) under [assignments.{assignment_id}]",
            file=str(course.root / "course.toml"),
        )
    engine = choose_engine(course, url=engine_url)
    check_projects(course, engine, (assignment_id,))
    roster = [Student(label, name=label, repo=path) for label, (path, _) in expected.items()]
    graded = _graded_runs(_without_deadline(course, assignment_id), roster, engine, runs)
    limits = _limits(course, assignment_id)
    findings: list[Finding] = []
    for label, (_, score) in expected.items():
        done = graded[label]
        findings.append(judge_score(label, done, score))
        findings.append(judge_flaky(label, done))
        findings.extend(judge_times(label, done, limits))
    return CheckReport(assignment_id, runs, tuple(findings))


def _graded_runs(
    course: Course, roster: list[Student], engine: EngineChoice, runs: int
) -> dict[str, list[SolutionRun]]:
    (assignment_id,) = course.assignments
    graded: dict[str, list[SolutionRun]] = {s.student_id: [] for s in roster}
    with course_lock(course.state_dir), open_state(course.state_dir / CHECK_STATE) as state:
        for _ in range(runs):
            request = GradeRequest(course, roster, (assignment_id,), force=True)
            summary = asyncio.run(Pipeline(request, state, engine).run())
            for outcome in summary.outcomes:
                graded[outcome.student.student_id].append(solution_run(outcome))
    return graded


def solution_run(outcome: StudentOutcome) -> SolutionRun:
    """What the verdicts read of one graded outcome."""
    grade = outcome.grade if outcome.status == "graded" else None
    tests = tuple(TestRun(t.name, t.status, t.time) for t in grade.tests) if grade else ()
    return SolutionRun(
        graded=grade is not None,
        score=grade.score if grade else None,
        outcome=str(outcome.outcome),
        reason=outcome.reason,
        tests=tests,
    )


def _without_deadline(course: Course, assignment_id: str) -> Course:
    """The course with one assignment, open forever: a solution is graded as it is now."""
    assignment = replace(
        course.assignment(assignment_id),
        deadline=NO_DEADLINE,
        extensions={},
        late=LatePolicy(),
        clock="commit_date",
    )
    return replace(course, assignments={assignment_id: assignment})


def _limits(course: Course, assignment_id: str) -> Limits:
    assignment = course.assignment(assignment_id)
    stages = stage_limits(
        project_config(course.projects_dir, assignment.project), assignment.scenario
    )
    files = read_project_files(course.projects_dir / assignment.project)
    return Limits(test_seconds=_test_limit(files), stage_seconds=stages.get("run"))


def _test_limit(files: dict[str, str]) -> float | None:
    """``grader_test_timeout`` from a ``pytest.ini`` of the project, if it sets one."""
    for path, text in sorted(files.items()):
        if Path(path).name != "pytest.ini":
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text)
            value = parser.get("pytest", TEST_LIMIT_KEY, fallback=None)
            return float(value) if value is not None else None
        except (configparser.Error, ValueError):
            continue
    return None
