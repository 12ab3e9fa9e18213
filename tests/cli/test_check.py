"""`grader check` on a tiny real course: the reference and the starter graded for real."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner, Result

from grader.cli import main
from tests.support.repos import GOOD, HALF


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


def with_solutions(course: Path, starter_score: float) -> Path:
    for name, code in (("reference", GOOD), ("starter", HALF)):
        (course / name).mkdir()
        (course / name / "solution.py").write_text(code)
    toml = course / "course.toml"
    text = toml.read_text().replace(
        "max_points = 10\n",
        'max_points = 10\nreference = "reference"\nstarter = "starter"\n'
        f"starter_score = {starter_score}\n",
    )
    toml.write_text(text)
    return course


def test_check_passes_when_reference_and_starter_get_their_scores(tiny_course: Path) -> None:
    course = with_solutions(tiny_course, starter_score=7)
    done = run("check", str(course), "-a", "add", "--runs", "2")
    assert done.exit_code == 0, done.output
    assert "reference gets 10: 2 of 2 runs got 10" in done.output
    assert "starter gets 7: 2 of 2 runs got 7" in done.output
    assert "no test changed" in done.output and "add: ready" in done.output
    # the check's grades stay out of the course's own records
    assert not (course / "out").exists()


def test_check_fails_when_the_starter_earns_points(tiny_course: Path) -> None:
    course = with_solutions(tiny_course, starter_score=0)
    done = run("check", str(course), "-a", "add")
    assert done.exit_code == 1, done.output
    assert "FAILED" in done.output and "starter gets 0" in done.output
    assert "got another score: 7" in done.output and "add: NOT ready" in done.output


def test_check_without_a_reference_or_starter_is_a_configuration_error(
    tiny_course: Path,
) -> None:
    done = run("check", str(tiny_course), "-a", "add")
    assert done.exit_code == 2
    assert "set reference" in done.output


def test_check_leaves_the_gradebook_alone(tiny_course: Path) -> None:
    course = with_solutions(tiny_course, starter_score=7)
    run("grade", str(course))
    before = (course / "out" / "add" / "history.csv").read_text()
    assert run("check", str(course), "-a", "add").exit_code == 0
    run("report", str(course))
    assert (course / "out" / "add" / "history.csv").read_text() == before
    with (course / "out" / "add" / "gradebook.csv").open() as fp:
        assert [r["student_id"] for r in csv.DictReader(fp)] == ["ada", "bob", "cy"]
