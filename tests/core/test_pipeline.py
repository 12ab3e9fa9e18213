"""The whole pipeline on a tiny real course: git -> archive -> local engine -> SQLite -> outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from grader.grading import GradeOptions, grade, report
from grader.status import course_status
from tests.support.repos import GOOD, HALF, ON_TIME, commit


def gradebook(course: Path) -> list[dict[str, str]]:
    with (course / "out" / "add" / "gradebook.csv").open() as fp:
        return list(csv.DictReader(fp))


@pytest.fixture
def graded_course(tiny_course: Path) -> Path:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    commit(tiny_course / "repos" / "bob", {"solution.py": HALF}, "try", ON_TIME)
    # cy has no repository at all
    return tiny_course


def test_course_is_graded_end_to_end(graded_course: Path) -> None:
    result = grade(GradeOptions(graded_course))
    rows = {r["student_id"]: r for r in gradebook(graded_course)}
    assert list(rows) == ["ada", "bob", "cy"]
    assert (rows["ada"]["score"], rows["ada"]["status"]) == ("10.0", "graded")
    assert (rows["bob"]["score"], rows["bob"]["status"]) == ("7.0", "graded")
    assert (rows["cy"]["score"], rows["cy"]["status"]) == ("", "not graded")
    assert len(rows["ada"]["commit"]) == 40
    assert result.summary.submissions_created == 2
    for student in rows:
        assert (graded_course / "out" / "add" / "feedback" / f"{student}.md").is_file()
        assert (graded_course / "out" / "add" / "feedback" / f"{student}.html").is_file()
    cy = next(o for o in result.summary.outcomes if o.student.student_id == "cy")
    assert cy.outcome == "repository unavailable"


def test_second_run_with_nothing_changed_submits_nothing(graded_course: Path) -> None:
    grade(GradeOptions(graded_course))
    first = gradebook(graded_course)
    again = grade(GradeOptions(graded_course))
    assert again.summary.submissions_created == 0
    assert again.summary.reused == 2
    assert gradebook(graded_course) == first


def test_new_commit_resubmits_only_that_student(graded_course: Path) -> None:
    grade(GradeOptions(graded_course))
    fixed = GOOD + "# fixed by bob\n"  # not byte-identical to ada's, which would be reused
    commit(graded_course / "repos" / "bob", {"solution.py": fixed}, "fix mul", ON_TIME)
    again = grade(GradeOptions(graded_course))
    assert again.summary.submissions_created == 1
    assert {r["student_id"]: r["score"] for r in gradebook(graded_course)}["bob"] == "10.0"


def test_force_submits_again(graded_course: Path) -> None:
    grade(GradeOptions(graded_course))
    again = grade(GradeOptions(graded_course, force=True, students=("ada",)))
    assert again.summary.submissions_created == 1


def test_report_rewrites_the_same_bytes_from_sqlite(graded_course: Path) -> None:
    grade(GradeOptions(graded_course))
    out = graded_course / "out" / "add"
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    for path in out.rglob("*"):
        if path.is_file():
            path.unlink()
    report(graded_course)
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before


def test_identical_work_of_two_students_runs_once(graded_course: Path) -> None:
    grade(GradeOptions(graded_course))
    commit(graded_course / "repos" / "bob", {"solution.py": GOOD}, "same as ada", ON_TIME)
    again = grade(GradeOptions(graded_course))
    assert again.summary.submissions_created == 0  # same archive, project and scenario
    assert {r["student_id"]: r["score"] for r in gradebook(graded_course)}["bob"] == "10.0"


def test_identical_work_submitted_in_one_run_is_executed_once(tiny_course: Path) -> None:
    for student in ("ada", "bob"):
        commit(tiny_course / "repos" / student, {"solution.py": GOOD}, "solve", ON_TIME)
    result = grade(GradeOptions(tiny_course))
    assert (result.summary.submissions_created, result.summary.reused) == (1, 1)
    scores = {r["student_id"]: r["score"] for r in gradebook(tiny_course)}
    assert scores == {"ada": "10.0", "bob": "10.0", "cy": ""}


def test_status_counts_the_run_a_reused_workspace_was_graded_by(tiny_course: Path) -> None:
    for student in ("ada", "bob"):
        commit(tiny_course / "repos" / student, {"solution.py": GOOD}, "solve", ON_TIME)
    grade(GradeOptions(tiny_course))
    runs = {row.student_id: row.submissions for row in course_status(tiny_course)}
    assert runs == {"ada": 1, "bob": 1, "cy": 0}


def test_a_report_that_lacks_a_test_the_rules_expect_is_no_ok(tiny_course: Path) -> None:
    config = json.loads((tiny_course / "projects" / "add" / "config.json").read_text())
    run = config["scenarios"]["grade"]["stages"]["run"]
    run["command"] = run["command"].replace(" -q ", " -q -k 'not mul' ")
    (tiny_course / "projects" / "add" / "config.json").write_text(json.dumps(config))
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    result = grade(GradeOptions(tiny_course, students=("ada",)))
    (ada,) = result.summary.outcomes
    assert ada.engine_status is not None and ada.outcome == "fail"
    assert ada.grade is not None and ada.grade.score == 7
    missing = [t for t in ada.grade.tests if t.status == "did not run"]
    assert [t.name for t in missing] == ["test_public_mul"]


def test_a_stage_timeout_names_the_stage_and_its_limit(tiny_course: Path) -> None:
    config = json.loads((tiny_course / "projects" / "add" / "config.json").read_text())
    config["scenarios"]["grade"]["stages"]["run"] = {"command": "sleep 30", "timeout": 1}
    (tiny_course / "projects" / "add" / "config.json").write_text(json.dumps(config))
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    result = grade(GradeOptions(tiny_course, students=("ada",)))
    (ada,) = result.summary.outcomes
    assert ada.outcome == "time limit exceeded"
    assert ada.reason.startswith("the run stage was stopped at its time limit of 1 s")
    feedback = (tiny_course / "out" / "add" / "feedback" / "ada.md").read_text()
    assert "time limit of 1 s" in feedback
