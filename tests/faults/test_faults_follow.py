"""Faults that outlast the client's retries on calls other than the create.

A storm longer than one call's six attempts on a poll, a stream download or /stats is
an infrastructure fault like any other: the run goes on, a submission the engine
already holds is followed again rather than created again, and a student is at worst
"not graded (infrastructure)". Each script below spends one call's six attempts on
429s with ``Retry-After: 0`` (no real waiting) or ends them with a lost answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.connect import URL_ENV
from grader.grading import GradeOptions, grade
from tests.faults.proxy import FaultPlan, FaultProxy
from tests.support.course_kit import write_course
from tests.support.served import ServedEngine

pytestmark = [pytest.mark.faults, pytest.mark.sandbox]

POLL = "GET /submissions"
STREAM = "GET /submissions/:id/:stream"
STATS = "GET /stats"


def storm(route: str, last: str = "status_429") -> FaultPlan:
    """Six failed attempts in a row on ``route``: five 429s, then ``last``."""
    script = ((route, "status_429"),) * 5 + ((route, last),)
    return FaultPlan(retry_after=("0",), script=script)


def run_with(
    plan: FaultPlan,
    students: tuple[str, ...],
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[tuple[str, str, str]], int, int]:
    """(student, status, outcome) per student, engine submissions, possible duplicates."""
    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", engine.token)
    monkeypatch.delenv(URL_ENV, raising=False)
    course = write_course(tmp_path / "course", student_repos, students=students)
    proxy.set_plan(plan)
    before = engine.last_submission_id()
    report = grade(GradeOptions(course, engine_url=proxy.url))
    outcomes = sorted((o.student.student_id, o.status, o.outcome) for o in report.summary.outcomes)
    return outcomes, engine.submissions_after(before), report.summary.possible_duplicates


def test_a_poll_storm_neither_stops_the_run_nor_loses_the_submissions(
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes, on_engine, _ = run_with(
        storm(POLL), ("s01", "s10"), engine, proxy, student_repos, tmp_path, monkeypatch
    )
    assert outcomes == [("s01", "graded", "ok"), ("s10", "graded", "fail")]
    assert on_engine == 2


def test_a_lost_poll_answer_never_creates_the_submission_again(
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = storm(POLL, last="reset_before")  # the client ends with a TransportError
    outcomes, on_engine, possible = run_with(
        plan, ("s01", "s10"), engine, proxy, student_repos, tmp_path, monkeypatch
    )
    assert [status for _, status, _ in outcomes] == ["graded", "graded"]
    assert on_engine - len(outcomes) <= possible == 0, "submissions created twice, unaccounted"


def test_a_stream_download_storm_does_not_stop_the_run(
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes, on_engine, possible = run_with(
        storm(STREAM), ("s01",), engine, proxy, student_repos, tmp_path, monkeypatch
    )
    assert outcomes in ([("s01", "graded", "ok")], [("s01", "not graded", "infrastructure")])
    assert on_engine - 1 <= possible


def test_a_stats_storm_does_not_stop_the_run(
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes, on_engine, _ = run_with(
        storm(STATS), ("s01", "s10"), engine, proxy, student_repos, tmp_path, monkeypatch
    )
    assert outcomes == [("s01", "graded", "ok"), ("s10", "graded", "fail")]
    assert on_engine == 2
