"""The sample course is also a regression test: every student's expected score and status."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from tests.support.leaks import Secrets, student_files

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"

# student -> (status, outcome, score) per assignment, as sample_course/README.md explains
EXPECTED = {
    "hw1": {
        "amartin": ("graded", "ok", "100.0"),
        "bchen": ("graded", "fail", "65.0"),
        "cokafor": ("graded", "ok", "100.0"),
        "dnovak": ("graded", "fail", "75.0"),
        "erivera": ("graded", "fail", "85.0"),
        "fsato": ("graded", "ok", "100.0"),
        "gmueller": ("graded", "ok", "80.0"),
        "hpatel": ("graded", "fail", "75.0"),
        # the cheaters get what their honest code earns
        "iwalsh": ("graded", "fail", "0.0"),
        "jnakamura": ("graded", "fail", "75.0"),
        "kadeyemi": ("graded", "fail", "0.0"),
        "lrossi": ("graded", "fail", "40.0"),
        "mdubois": ("graded", "fail", "0.0"),
        "nhassan": ("graded", "fail", "0.0"),
        "oberg": ("graded", "fail", "75.0"),
        "pmehta": ("graded", "fail", "0.0"),
        "qnguyen": ("graded", "fail", "10.0"),
        "rsilva": ("graded", "fail", "0.0"),
        "skowalczyk": ("graded", "fail", "75.0"),
    },
    "hw2": {
        "amartin": ("graded", "ok", "100.0"),
        "bchen": ("graded", "fail", "60.0"),
        "cokafor": ("graded", "build error", "0.0"),
        "dnovak": ("graded", "ok", "70.0"),
        "erivera": ("graded", "ok", "100.0"),
        "fsato": ("graded", "ok", "100.0"),
        "gmueller": ("graded", "fail", "90.0"),
        "hpatel": ("not graded", "repository unavailable", ""),
        "iwalsh": ("graded", "fail", "0.0"),
        "jnakamura": ("graded", "fail", "90.0"),
        "kadeyemi": ("graded", "fail", "0.0"),
        "lrossi": ("graded", "fail", "90.0"),
        "mdubois": ("graded", "fail", "60.0"),
        "nhassan": ("graded", "fail", "0.0"),
        "oberg": ("graded", "fail", "60.0"),
        "pmehta": ("graded", "fail", "0.0"),
        "qnguyen": ("graded", "ok", "100.0"),
        "rsilva": ("graded", "fail", "0.0"),
        "skowalczyk": ("graded", "ok", "100.0"),
    },
}


@pytest.fixture(scope="module")
def graded_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    course = tmp_path_factory.mktemp("sample") / "sample_course"
    shutil.copytree(SAMPLE, course, ignore=shutil.ignore_patterns(".grader", "out"))
    result = CliRunner().invoke(main, ["grade", str(course)])
    for assignment in EXPECTED:
        exported = CliRunner().invoke(
            main, ["export", str(course), "-a", assignment, "--lms", "gradescope"]
        )
        assert exported.exit_code == 0, exported.output
    return course, result.output, result.exit_code


def read_gradebook(course: Path, assignment: str) -> list[dict[str, str]]:
    with (course / "out" / assignment / "gradebook.csv").open(newline="") as fp:
        return list(csv.DictReader(fp))


@pytest.mark.parametrize("assignment", ["hw1", "hw2"])
def test_every_sample_student_gets_the_expected_grade(
    graded_sample: tuple[Path, str, int], assignment: str
) -> None:
    course, output, _ = graded_sample
    rows = read_gradebook(course, assignment)
    got = {r["student_id"]: (r["status"], r["outcome"], r["score"]) for r in rows}
    assert got == EXPECTED[assignment], output
    header = list(rows[0])
    assert header[:6] == ["student_id", "name", "score", "max_score", "status", "commit"]
    for student in EXPECTED[assignment]:
        for suffix in (".md", ".html"):
            assert (course / "out" / assignment / "feedback" / f"{student}{suffix}").is_file()


def test_sample_run_exits_1_and_names_the_student_not_graded(
    graded_sample: tuple[Path, str, int],
) -> None:
    _, output, exit_code = graded_sample
    assert exit_code == 1, output
    assert "NOT GRADED hw2/hpatel: repository unavailable" in output


def test_erivera_is_graded_on_the_commit_before_the_late_window_closed(
    graded_sample: tuple[Path, str, int],
) -> None:
    course, _, _ = graded_sample
    feedback = (course / "out" / "hw1" / "feedback" / "erivera.md").read_text()
    row = next(r for r in read_gradebook(course, "hw1") if r["student_id"] == "erivera")
    assert row["commit"][:10] in feedback


@pytest.mark.parametrize("assignment", ["hw1", "hw2"])
def test_no_student_reads_a_hidden_test(
    graded_sample: tuple[Path, str, int], assignment: str
) -> None:
    """rsilva tries to read the hidden tests and show them; nobody's feedback, manifest or
    Gradescope result names a hidden test or quotes a line of one."""
    course, _, _ = graded_sample
    secrets = Secrets.of(course / "projects" / assignment)
    assert len(secrets.names) == 6 and len(secrets.lines) >= 6
    files = list(student_files(course / "out" / assignment))
    assert len([f for f in files if f.parent.name == "results"]) == len(EXPECTED[assignment]) - (
        assignment == "hw2"
    )
    for path in files:
        assert not secrets.found_in(path.read_text(errors="replace")), path


def test_the_instructor_sees_who_submitted_files_over_the_tests(
    graded_sample: tuple[Path, str, int],
) -> None:
    course, _, _ = graded_sample
    for assignment in ("hw1", "hw2"):
        rows = {r["student_id"]: r for r in read_gradebook(course, assignment)}
        assert rows["oberg"]["flags"].startswith("files dropped"), rows["oberg"]


def test_a_build_error_lists_every_test_of_the_glob_rules_in_new_york_time(
    graded_sample: tuple[Path, str, int],
) -> None:
    course, _, _ = graded_sample
    out = course / "out" / "hw2"
    feedback = (out / "feedback" / "cokafor.md").read_text()
    assert "## Tests (0 of 8 passed)" in feedback
    assert "matching" not in feedback and "per test" not in feedback
    assert "Deadline: 2026-10-02 23:59 EDT" in feedback and " UTC" not in feedback
    dashboard = (out / "dashboard.html").read_text()
    assert "test_public_*" not in dashboard and "test_hidden_*" not in dashboard
    results = json.loads((out / "results" / "cokafor.json").read_text())
    assert len(results["tests"]) == 8
    assert sum(t["max_score"] for t in results["tests"]) == 100


def test_a_late_day_budget_is_spent_across_the_term_by_grader_report(
    graded_sample: tuple[Path, str, int], tmp_path: Path
) -> None:
    """gmueller is 1 d 6 h late on hw1 (2 days), dnovak 2 d 2 h late on hw2 (3 days):
    with 2 late days each, gmueller pays nothing and dnovak pays for one day."""
    course, _, _ = graded_sample
    copy = tmp_path / "course"
    shutil.copytree(course, copy, ignore=shutil.ignore_patterns("out", "mirrors", "engine"))
    toml = (copy / "course.toml").read_text()
    (copy / "course.toml").write_text(
        toml.replace("[assignments.hw1]", "[course.late_days]\nbudget = 2\n\n[assignments.hw1]", 1)
    )
    done = CliRunner().invoke(main, ["report", str(copy)])
    assert done.exit_code == 0, done.output
    hw1 = {r["student_id"]: r for r in read_gradebook(copy, "hw1")}
    hw2 = {r["student_id"]: r for r in read_gradebook(copy, "hw2")}
    assert (hw1["gmueller"]["score"], hw1["gmueller"]["late_days_spent"]) == ("100.0", "2")
    assert hw2["gmueller"]["late_days_left"] == "0"
    assert (hw2["dnovak"]["score"], hw2["dnovak"]["late_days_spent"]) == ("90.0", "2")
    assert hw1["amartin"]["late_days_left"] == "2"
    feedback = (copy / "out" / "hw1" / "feedback" / "gmueller.md").read_text()
    assert "This assignment used 2 late days: you used 2 of your 2 late days (0 left)." in feedback
    dashboard = (copy / "out" / "hw2" / "dashboard.html").read_text()
    assert "late days left" in dashboard


@pytest.mark.parametrize("assignment", ["hw1", "hw2"])
def test_the_sample_assignments_pass_grader_check(
    graded_sample: tuple[Path, str, int], assignment: str
) -> None:
    course, _, _ = graded_sample
    done = CliRunner().invoke(main, ["check", str(course), "-a", assignment])
    assert done.exit_code == 0, done.output
    assert "reference gets 100" in done.output and "starter gets 0" in done.output


def test_the_course_page_links_every_assignment_and_student_page(
    graded_sample: tuple[Path, str, int],
) -> None:
    course, _, _ = graded_sample
    out = course / "out"
    page = (out / "index.html").read_text()
    links = re.findall(r'href="([^"]*)"', page)
    assert "hw1/dashboard.html" in links and "hw2/dashboard.html" in links
    assert "hw1/instructor/gmueller.html" in links
    assert len(links) == 2 + 2 * 19  # two dashboards, every student's page in each
    for link in links:
        assert (out / link).is_file(), link
    assert not re.search(r"<script|src=", page)
    assert "2026-09-18 23:59 EDT" in page
    assert "- (repository unavailable)" in page
