"""Grading through a fault-injecting proxy loses no student and grades none twice.

Each test grades real students (twelve, or eight of them for one fault kind) through
``grade(GradeOptions(...))`` against a real served engine, with the proxy injecting
one kind of fault at a high rate (or a mix), and checks the grader's records against
the engine's own SQLite:

* every student ends graded exactly once, with the fault-free run's gradebook;
* the engine holds exactly one extra submission per create whose answer was lost after
  the engine acted on it (the ambiguous creates), and no other extra one;
* the run summary's ``possible_duplicates`` is exactly the number of creates whose
  answer the client never read (what it cannot tell apart from an ambiguous create).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.connect import URL_ENV
from grader.grading import GradeOptions, GradeReport, grade
from tests.faults.proxy import (
    ANSWER_LOST,
    FAULT_KINDS,
    FORWARDED_THEN_LOST,
    FaultLedger,
    FaultPlan,
    FaultProxy,
    fault_proxy,
)
from tests.support.course_kit import SOLUTIONS, gradebook, grader_records, write_course
from tests.support.served import ServedEngine

pytestmark = [pytest.mark.faults, pytest.mark.sandbox]

CREATE = "POST /submissions"
MAX_STREAK = 1
"""At most two faults in a row on one route: the client's backoff (0.5 s, doubling) is
not configurable from course.toml, and a third failed attempt would cost seconds of
real waiting per call. Calls exhausting every attempt are the hygiene suite's subject."""
EVERYONE = tuple(SOLUTIONS)
SOME = ("s01", "s02", "s03", "s04", "s05", "s06", "s10", "s12")
"""The single-kind tests grade eight of the twelve (passing, failing, broken): the
suite's time is mostly whole grading runs."""


@dataclass(frozen=True)
class FaultyRun:
    course: Path
    students: tuple[str, ...]
    report: GradeReport
    ledger: FaultLedger
    on_engine: int  # submissions the engine stored during the run
    retries: int  # the client's retries, as its run log tells them
    seconds: float

    def describe(self) -> str:
        summary = self.report.summary
        return (
            f"{len(self.students)} students, "
            f"{self.on_engine - len(self.students)} duplicates on the engine, "
            f"{summary.possible_duplicates} possible duplicates, {self.retries} retries, "
            f"{sum(self.ledger.requests.values())} requests, faults {self.ledger.by_kind()}, "
            f"{self.seconds:.1f} s"
        )


def grade_through(
    proxy: FaultProxy,
    engine: ServedEngine,
    course: Path,
    plan: FaultPlan,
    monkeypatch: pytest.MonkeyPatch,
    students: tuple[str, ...] = EVERYONE,
) -> FaultyRun:
    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", engine.token)
    monkeypatch.delenv(URL_ENV, raising=False)
    ledger = proxy.set_plan(plan)
    before = engine.last_submission_id()
    started = time.monotonic()
    report = grade(GradeOptions(course, engine_url=proxy.url))
    seconds = time.monotonic() - started
    retries = report.log_file.read_text().count(" retrying ")
    on_engine = engine.submissions_after(before)
    return FaultyRun(course, students, report, ledger, on_engine, retries, seconds)


def assert_nothing_lost(run: FaultyRun, reference: list[dict[str, str]]) -> None:
    summary = run.report.summary
    records = grader_records(run.course, summary.run_id)
    everyone = dict.fromkeys(run.students, 1)
    not_graded = [(o.student.student_id, o.outcome, o.reason) for o in summary.not_graded]
    assert not_graded == [], run.describe()
    assert records["grades"] == everyone, "one grade per student in this run"
    assert records["finals"] == everyone, "one final submission per student"
    assert len(set(records["final_engine_ids"])) == len(run.students)
    assert records["created"] == summary.submissions_created == len(run.students)
    assert gradebook(run.course) == [r for r in reference if r["student_id"] in run.students]
    duplicates = run.on_engine - len(run.students)
    ambiguous = run.ledger.count(FORWARDED_THEN_LOST, CREATE)
    assert duplicates == ambiguous, f"orphans on the engine: {run.describe()}"
    assert summary.possible_duplicates == run.ledger.count(ANSWER_LOST, CREATE), run.describe()
    assert duplicates <= summary.possible_duplicates


@pytest.fixture(scope="module")
def reference(
    engine: ServedEngine, student_repos: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, str]]:
    """The gradebook of a run through the proxy with no faults at all."""
    course = write_course(tmp_path_factory.mktemp("reference"), student_repos)
    with pytest.MonkeyPatch.context() as monkeypatch, fault_proxy(engine.url) as proxy:
        run = grade_through(proxy, engine, course, FaultPlan(), monkeypatch)
    assert run.on_engine == len(EVERYONE) and run.report.summary.possible_duplicates == 0
    rows = gradebook(course)
    scores = {row["student_id"]: (row["status"], row["score"], row["outcome"]) for row in rows}
    assert scores["s01"] == ("graded", "10.0", "ok")
    assert scores["s10"] == ("graded", "7.0", "fail")  # mul is wrong: 7 of 10 points
    assert scores["s12"] == ("graded", "0.0", "fail")  # does not import: every check errs
    return rows


SEEDS = {kind: seed for seed, kind in enumerate(FAULT_KINDS, start=101)}
ONE_KIND = [
    pytest.param("status_503", 0.3, id="503"),
    pytest.param("status_429", 0.3, id="429-retry-after"),
    pytest.param("reset_before", 0.3, id="reset-before-forwarding"),
    pytest.param("reset_after", 0.3, id="reset-after-forwarding"),
    pytest.param("truncate", 0.3, id="truncated-body"),
    pytest.param("gateway_504", 0.3, id="504-after-forwarding"),
    pytest.param("delay", 0.5, id="delay"),
]


@pytest.mark.parametrize(("kind", "rate"), ONE_KIND)
def test_every_student_is_graded_once_under_one_fault_kind(
    kind: str,
    rate: float,
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    reference: list[dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    course = write_course(tmp_path / "course", student_repos, students=SOME)
    plan = FaultPlan(rates={kind: rate}, seed=SEEDS[kind], max_streak=MAX_STREAK)
    run = grade_through(proxy, engine, course, plan, monkeypatch, SOME)
    print(f"{kind} at {rate:.0%}: {run.describe()}")
    assert run.ledger.count(kind) > 0, "the proxy injected nothing"
    assert_nothing_lost(run, reference)


def test_every_student_is_graded_once_under_mixed_faults(
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    reference: list[dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    course = write_course(tmp_path / "course", student_repos)
    rates = {
        "status_503": 0.07,
        "status_429": 0.06,
        "reset_before": 0.06,
        "reset_after": 0.06,
        "truncate": 0.06,
        "gateway_504": 0.05,
        "delay": 0.06,
    }
    plan = FaultPlan(rates=rates, seed=11, max_streak=MAX_STREAK)
    run = grade_through(proxy, engine, course, plan, monkeypatch)
    print(f"mixed at {sum(rates.values()):.0%}: {run.describe()}")
    assert run.ledger.count() > 0
    assert_nothing_lost(run, reference)
