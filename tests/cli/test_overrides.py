"""`grader override` and `grader regrade` on a tiny real course: stored with when and
why, kept across regrades, shown in every output that carries a score."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from grader.cli import main
from grader.state import open_state
from tests.support.repos import GOOD, HALF, ON_TIME, commit


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


def override(course: Path, student: str, *args: str) -> Result:
    """`grader override COURSE -a add -s STUDENT ARGS...`"""
    return run("override", str(course), "-a", "add", "-s", student, *args)


def rows(course: Path, name: str = "gradebook.csv") -> dict[str, dict[str, str]]:
    with (course / "out" / "add" / name).open() as fp:
        return {r["student_id"]: r for r in csv.DictReader(fp)}


@pytest.fixture
def graded(tiny_course: Path) -> Path:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    commit(tiny_course / "repos" / "bob", {"solution.py": HALF}, "try", ON_TIME)
    assert run("grade", str(tiny_course)).exit_code == 1  # cy has no repository
    return tiny_course


def test_an_override_sets_the_score_everywhere_and_keeps_when_and_why(graded: Path) -> None:
    done = override(graded, "bob", "--score", "9", "--reason", "regrade request: mul was right")
    assert done.exit_code == 0, done.output
    assert "score now 9/10" in done.output
    bob = rows(graded)["bob"]
    assert list(rows(graded)["ada"])[:6] == [
        "student_id",
        "name",
        "score",
        "max_score",
        "status",
        "commit",
    ]
    assert (bob["score"], bob["graded_score"], bob["override"]) == ("9.0", "7.0", "score 9")
    assert bob["override_reason"] == "regrade request: mul was right" and bob["override_at"]
    feedback = (graded / "out" / "add" / "feedback" / "bob.md").read_text()
    assert "Total: 9 / 10" in feedback
    assert "your score was set to 9 (the tests gave 7)" in feedback
    assert "mul was right" not in feedback  # the reason is the instructor's unless shown
    instructor = (graded / "out" / "add" / "instructor" / "bob.md").read_text()
    assert "Override: score 9 (the tests gave 7)" in instructor and "mul was right" in instructor
    assert (
        "override, score 9: regrade request"
        in (graded / "out" / "add" / "dashboard.html").read_text()
    )
    history = rows(graded, "history.csv")
    assert history["bob"]["event"] == "override (score 9)"  # the last row of bob
    assert history["bob"]["previous_score"] == "7.0"
    exported = run("export", str(graded), "-a", "add", "--lms", "gradescope")
    assert exported.exit_code == 0, exported.output
    results = json.loads((graded / "out" / "add" / "results" / "bob.json").read_text())
    assert results["score"] == 9
    status = run("status", str(graded))
    assert "9 (score 9)" in status.output
    listed = run("override", str(graded), "--list")
    assert "bob" in listed.output and "score 9" in listed.output and "ada" not in listed.output


def test_the_reason_reaches_the_student_only_when_allowed(graded: Path) -> None:
    args = ["--adjust", "-2", "--reason", "copied mul from a friend", "--show-reason"]
    assert override(graded, "bob", *args).exit_code == 0
    feedback = (graded / "out" / "add" / "feedback" / "bob.md").read_text()
    assert "your score was adjusted by -2 (the tests gave 7): copied mul from a friend" in feedback
    assert "Total: 5 / 10" in feedback


def test_an_override_outlives_a_regrade_and_the_instructor_hears_the_grade_changed(
    graded: Path,
) -> None:
    override(graded, "bob", "--score", "9", "--reason", "partial credit")
    fixed = GOOD + "# bob's own fix\n"
    commit(graded / "repos" / "bob", {"solution.py": fixed}, "fix mul", ON_TIME)
    regraded = run(
        "regrade", str(graded), "-a", "add", "-s", "bob", "--reason", "new commit after the appeal"
    )
    assert regraded.exit_code == 0, regraded.output
    assert "7 -> 10" in regraded.output
    assert "the grade under this override changed: 7 when it was set, 10 now" in regraded.output
    bob = rows(graded)["bob"]
    assert (bob["score"], bob["graded_score"]) == ("9.0", "10.0")
    assert "changed: 7 when it was set, 10 now" in bob["override_note"]
    with (graded / "out" / "add" / "history.csv").open() as fp:
        history = [r for r in csv.DictReader(fp) if r["student_id"] == "bob"]
    assert [r["event"] for r in history] == ["graded", "override (score 9)", "regrade"]
    assert (history[-1]["previous_score"], history[-1]["score"]) == ("7.0", "10.0")
    assert history[-1]["reason"] == "new commit after the appeal"
    regrade_again = run("grade", str(graded))  # a later nightly run keeps the override
    assert "changed: 7 when it was set, 10 now" in regrade_again.output
    assert rows(graded)["bob"]["score"] == "9.0"
    removed = override(graded, "bob", "--remove", "--reason", "fixed for real")
    assert "override removed; score now 10/10" in removed.output
    assert rows(graded)["bob"]["override"] == ""
    with open_state(graded / ".grader") as state:
        (stored,) = state.override_history("add")
    assert stored.removed_reason == "fixed for real" and stored.removed_at is not None


def test_a_student_who_was_not_graded_gets_a_score_only_when_it_is_set(graded: Path) -> None:
    adjusted = override(graded, "cy", "--adjust", "3", "--reason", "x")
    assert "nothing to adjust" in adjusted.output
    assert rows(graded)["cy"]["score"] == ""
    override(graded, "cy", "--score", "6", "--reason", "emailed code")
    cy = rows(graded)["cy"]
    assert (cy["score"], cy["status"], cy["override"]) == ("6.0", "graded", "score 6")


@pytest.mark.parametrize(
    "args",
    [
        ["-a", "add", "-s", "bob", "--score", "9"],  # no reason
        ["-a", "add", "-s", "bob", "--score", "9", "--adjust", "1", "--reason", "x"],
        ["-a", "add", "-s", "nobody", "--score", "9", "--reason", "x"],
        ["-a", "nope", "-s", "bob", "--score", "9", "--reason", "x"],
        ["-s", "bob", "--score", "9", "--reason", "x"],
    ],
)
def test_a_bad_override_is_a_usage_error(graded: Path, args: list[str]) -> None:
    assert run("override", str(graded), *args).exit_code == 2
