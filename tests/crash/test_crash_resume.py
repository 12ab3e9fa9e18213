"""SIGKILL `grader grade` at many moments of a run, rerun it, and get the same results.

A module-wide course of a dozen students is graded once without interruption (the
baseline). Each test then wipes the state and outputs and grades the same folder again,
killing the grader (the process alone, as the OOM killer would) at seeded moments: while
it starts, between writing a submission row and storing the engine's id, while it
follows running submissions, after some finished, and while it writes outputs. It then
reruns until a run ends by itself and compares everything with the baseline.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.course_kit import STUDENTS, make_course
from tests.support.crashkit import (
    EngineSubmission,
    GraderRow,
    Outcome,
    Trigger,
    engine_submissions,
    grader_rows,
    last_run_id,
    output_files,
    run_grade,
)

pytestmark = pytest.mark.crash

SLOTS = 2  # the crash course's [engine] slots: submissions executing at once
INTERNAL_ERROR = 20
ACTIVE = {0, 1, 3}
MIN_KILLS = 5


def kill_plan(seed: int) -> list[Trigger]:
    """Six kill points spread over a run, their details drawn from ``seed``."""
    rng = random.Random(seed)
    start = rng.uniform(0.15, 0.9)
    finals = rng.randint(1, 3)
    return [
        Trigger(f"{start * 1000:.0f} ms after start", lambda p: p.elapsed >= start),
        Trigger(
            "a row written before the create call",
            lambda p: p.creating > 0,
            rng.choice([0.0, 0.0, 0.005]),
        ),
        Trigger("submissions being followed", lambda p: p.created > 0, rng.uniform(0, 0.2)),
        Trigger(f"{finals} final in this run", lambda p: p.final >= finals, rng.uniform(0, 0.1)),
        Trigger("the engine answered, the id is not stored yet", lambda p: p.unstored > 0),
        Trigger("outputs being written", lambda p: p.run_finished, rng.uniform(0, 0.08)),
    ]


@dataclass(frozen=True)
class Baseline:
    course: Path
    outputs: dict[str, bytes]
    returncode: int


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The course graded once without interruption; its state and outputs removed again."""
    course = make_course(tmp_path_factory.mktemp("crash"))
    done = run_grade(course, course.parent / "logs", None, name="baseline")
    assert done.returncode == 1, done.stderr  # s07 has no repository: not graded
    outputs = dict(output_files(course / "out" / "calc"))
    return Baseline(course, outputs, done.returncode)


def fresh(baseline: Baseline) -> Path:
    course = baseline.course
    shutil.rmtree(course / ".grader", ignore_errors=True)
    shutil.rmtree(course / "out", ignore_errors=True)
    return course


@dataclass
class Chain:
    outcomes: list[Outcome]
    # after each kill: the last run's id and the archives with a final result
    finished_at_kill: list[tuple[int, set[str]]]

    @property
    def kills(self) -> int:
        return sum(o.killed for o in self.outcomes)


def kill_and_rerun(course: Path, plan: list[Trigger], logs: Path) -> Chain:
    """Run the grader once per kill point (killing it there), then once to the end."""
    chain = Chain([], [])
    for number, trigger in enumerate([*plan, None]):
        outcome = run_grade(course, logs, trigger, name=f"run{number}")
        chain.outcomes.append(outcome)
        assert "Traceback" not in outcome.stderr, outcome.stderr
        # the lock of a killed run still names it, and binds nobody
        assert "another grader run" not in outcome.stderr, outcome.stderr
        if not outcome.killed:
            assert outcome.returncode in (0, 1), f"{trigger}: {outcome.stderr}"
            if trigger is None:
                break
            continue  # it finished before its kill point; the next point gets the next run
        assert outcome.survivors == [], f"{trigger}: children outlived the grader"
        lock = course / ".grader" / "lock"
        assert not lock.exists() or lock.read_text() in ("", f"pid {outcome.pid}")
        rows = grader_rows(course)
        finished = {r.archive_sha256 for r in rows if r.state == "final"}
        chain.finished_at_kill.append((last_run_id(course), finished))
    return chain


def masked(name: str, data: bytes) -> bytes:
    """Output bytes without the engine's submission id (an engine counter, not a result)."""
    if name.startswith("manifest/"):
        manifest = json.loads(data)
        manifest.pop("submission_id", None)
        return json.dumps(manifest, sort_keys=True).encode()
    if name.startswith("instructor/"):
        return re.sub(rb"Submission: \d+", b"Submission: N", data)
    return data


def assert_same_outputs(course: Path, baseline: Baseline) -> None:
    after = dict(output_files(course / "out" / "calc"))
    after.pop("history.csv")  # one line per run and grade: a crashed course has more runs
    before = {k: v for k, v in baseline.outputs.items() if k != "history.csv"}
    assert sorted(after) == sorted(before)
    exact = [
        n for n in before if n.startswith("feedback/") or n in ("dashboard.html", "gradebook.csv")
    ]
    assert len(exact) == 2 * len(STUDENTS) + 2
    for name in exact:
        assert after[name] == before[name], f"{name} differs from the uninterrupted run"
    for name in set(before) - set(exact):
        assert masked(name, after[name]) == masked(name, before[name]), name


def assert_gradebook_points_at_engine_results(
    course: Path, rows: list[GraderRow], engine: list[EngineSubmission]
) -> None:
    by_id = {e.engine_id: e for e in engine}
    final = {r.engine_id: r for r in rows if r.state == "final"}
    with (course / "out" / "calc" / "gradebook.csv").open(newline="") as fp:
        for line in csv.DictReader(fp):
            if line["status"] != "graded":
                continue
            manifest = json.loads(
                (course / "out" / "calc" / "manifest" / f"{line['student_id']}.json").read_text()
            )
            engine_id = int(manifest["submission_id"])
            assert engine_id in final, line["student_id"]
            assert by_id[engine_id].archive_sha256 == manifest["archive_sha256"]
            assert by_id[engine_id].status not in (INTERNAL_ERROR, *ACTIVE)


def assert_nothing_finished_was_lost(chain: Chain, rows: list[GraderRow]) -> None:
    """What was final at a kill is reused afterwards, never submitted again."""
    for number, (killed_run, finished) in enumerate(chain.finished_at_kill, 1):
        later = {r.archive_sha256 for r in rows if r.run_id > killed_run and r.engine_id}
        assert not finished & later, f"kill {number}: finished archives were submitted again"


def duplicates(
    rows: list[GraderRow], engine: list[EngineSubmission]
) -> tuple[int, int, Counter[str]]:
    """What the kills cost: (orphans, duplicate verdicts, resubmissions per student).

    An orphan is a submission the engine created whose id the grader never stored; a
    duplicate verdict, an archive the engine ran to a result more than once; a
    resubmission, a further row with an engine id for the same student (what was running
    when the grader died ends as 20 and must run again).
    """
    known = {r.engine_id for r in rows if r.engine_id is not None}
    orphans = sum(1 for e in engine if e.engine_id not in known)
    verdicts = Counter(e.archive_sha256 for e in engine if e.status != INTERNAL_ERROR)
    per_student = Counter(r.student_id for r in rows if r.engine_id is not None)
    resubmitted = Counter({s: n - 1 for s, n in per_student.items() if n > 1})
    return orphans, sum(n - 1 for n in verdicts.values()), resubmitted


def assert_crashed_runs_were_submitted_again(
    rows: list[GraderRow], engine: list[EngineSubmission]
) -> None:
    """A submission running when the grader died is ended as 20, then run again and final."""
    status = {e.engine_id: e.status for e in engine}
    for number, row in enumerate(rows):
        if row.engine_id is None or row.state == "final":
            continue
        assert (row.state, status[row.engine_id]) == ("infra", INTERNAL_ERROR), row
        again = [r for r in rows[number + 1 :] if r.student_id == row.student_id]
        assert any(r.state == "final" for r in again), f"{row.student_id} never ran again"


def check_chain(baseline: Baseline, seed: int, logs: Path) -> Chain:
    course = fresh(baseline)
    chain = kill_and_rerun(course, kill_plan(seed), logs)
    last = chain.outcomes[-1]
    assert not last.killed
    assert last.returncode == baseline.returncode, last.stderr
    assert chain.kills >= MIN_KILLS, [o.trigger for o in chain.outcomes]
    assert_same_outputs(course, baseline)
    rows, engine = grader_rows(course), engine_submissions(course / ".grader" / "engine")
    assert {r.engine_id for r in rows if r.engine_id is not None} <= {
        e.engine_id for e in engine
    }, "the grader knows a submission the engine lost"
    assert not [e for e in engine if e.status in ACTIVE], "the engine still runs something"
    assert_gradebook_points_at_engine_results(course, rows, engine)
    assert_nothing_finished_was_lost(chain, rows)
    orphans, extra_verdicts, resubmitted = duplicates(rows, engine)
    # a kill between the engine's answer and the stored id costs at most one duplicate
    assert orphans <= chain.kills
    assert extra_verdicts <= chain.kills
    # what ran when the grader died ends as 20 and is submitted again: at most SLOTS per kill
    assert sum(resubmitted.values()) <= SLOTS * chain.kills, resubmitted
    assert_crashed_runs_were_submitted_again(rows, engine)
    return chain


def test_killed_runs_resume_to_the_uninterrupted_results_and_no_dead_lock_blocks(
    baseline: Baseline, tmp_path: Path
) -> None:
    check_chain(baseline, seed=1, logs=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_killed_runs_resume_to_the_uninterrupted_results_with_more_seeds(
    baseline: Baseline, tmp_path: Path, seed: int
) -> None:
    check_chain(baseline, seed=seed, logs=tmp_path)
