"""A 502 from a gateway after the engine created the submission is a possible duplicate.

A gateway answers 502 when its upstream hangs up mid-answer: the engine may well have
created the submission. The client counts 504 and lost connections as ambiguous
creates, but not 502, so the run summary's ``possible_duplicates`` misses them.
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

STUDENTS = ("s01", "s02", "s03", "s10")


def test_a_502_after_the_create_counts_as_a_possible_duplicate(
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", engine.token)
    monkeypatch.delenv(URL_ENV, raising=False)
    course = write_course(tmp_path / "course", student_repos, students=STUDENTS)
    create = "POST /submissions"
    ledger = proxy.set_plan(FaultPlan(script=((create, "gateway_502"), (create, "gateway_502"))))
    before = engine.last_submission_id()
    summary = grade(GradeOptions(course, engine_url=proxy.url)).summary
    duplicates = engine.submissions_after(before) - len(STUDENTS)
    assert ledger.count("gateway_502", create) == 2
    assert [o.status for o in summary.outcomes] == ["graded"] * len(STUDENTS)
    assert duplicates == 2
    assert summary.possible_duplicates >= duplicates
