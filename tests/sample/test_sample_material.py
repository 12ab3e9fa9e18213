"""The sample course's own material: config, roster, student bundles and instructor suites.

These tests check the course *content*: the instructor suites run through the local
engine's runner (the real sandbox, the real grading harness) on each student's graded
commit, checked out from its bundle, so the expected outcomes in ``sample_course/README.md``
are facts, not hopes. The end-to-end run through the grader is tested elsewhere.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.api.models import StatusCode
from grader.config import Assignment, Course, load_course
from grader.engine.projects import build_run_spec, find_project, resolve_scenario
from grader.engine.runner import run_submission
from grader.engine.spec import StageSpec

COURSE_DIR = Path(__file__).resolve().parents[2] / "sample_course"
TEST_COUNT = {"hw1": 10, "hw2": 8}
NATIVE_COLUMNS = [
    "student_id",
    "name",
    "email",
    "github_username",
    "section",
    "sis_user_id",
    "sis_login_id",
    "canvas_id",
]


@dataclass(frozen=True)
class Expected:
    """One row of README.md's table of expected outcomes."""

    subject: str | None  # subject of the graded commit; None: no repository
    outcome: str  # ok | fail | build error | time limit exceeded | repository unavailable
    raw: float | None  # points from the instructor tests; None: not graded
    failing: tuple[str, ...] = ()  # tests that do not pass
    late_days: int = 0  # started days late after the grace period
    final: float | None = None  # after the late penalty; None: not graded


HW1_ALL = (
    "test_hidden_average_word_length_empty",
    "test_hidden_average_word_length_rounding",
    "test_hidden_top_words_n_exceeds_vocabulary",
    "test_hidden_top_words_ties_alphabetical",
    "test_hidden_unique_words_ignore_case",
    "test_hidden_word_count_punctuation",
    "test_public_average_word_length_simple",
    "test_public_top_words_simple",
    "test_public_unique_words_sorted",
    "test_public_word_count_simple",
)

EXPECTED: dict[tuple[str, str], Expected] = {
    ("hw1", "amartin"): Expected(
        "Implement top_words and average_word_length", "ok", 100, final=100
    ),
    ("hw1", "bchen"): Expected(
        "Solve homework 1",
        "fail",
        65,
        (
            "test_hidden_average_word_length_empty",
            "test_hidden_top_words_ties_alphabetical",
            "test_hidden_word_count_punctuation",
        ),
        final=65,
    ),
    ("hw1", "cokafor"): Expected("Fix tie order in top_words", "ok", 100, final=100),
    ("hw1", "dnovak"): Expected(
        "Count words by hand in top_words",
        "fail",
        75,
        ("test_hidden_top_words_ties_alphabetical", "test_public_top_words_simple"),
        final=75,
    ),
    ("hw1", "erivera"): Expected(
        "Homework 1 solution", "fail", 85, ("test_hidden_top_words_ties_alphabetical",), final=85
    ),
    ("hw1", "fsato"): Expected("Finish top_words and average_word_length", "ok", 100, final=100),
    ("hw1", "gmueller"): Expected(
        "Add top_words and average_word_length", "ok", 100, late_days=2, final=80
    ),
    ("hw1", "hpatel"): Expected(
        "Homework 1 (average_word_length still missing)",
        "fail",
        75,
        (
            "test_hidden_average_word_length_empty",
            "test_hidden_average_word_length_rounding",
            "test_public_average_word_length_simple",
        ),
        final=75,
    ),
    ("hw2", "amartin"): Expected("Evaluate RPN expressions", "ok", 100, final=100),
    ("hw2", "bchen"): Expected(
        "RPN calculator",
        "fail",
        60,
        (
            "test_hidden_division_truncates_toward_zero",
            "test_hidden_negative_numbers",
            "test_hidden_stack_underflow",
            "test_hidden_too_many_operands",
        ),
        final=60,
    ),
    ("hw2", "cokafor"): Expected("Move operators into apply()", "build error", 0, final=0),
    ("hw2", "dnovak"): Expected("Handle blank lines", "ok", 100, late_days=3, final=70),
    ("hw2", "erivera"): Expected("RPN calculator", "ok", 100, final=100),
    ("hw2", "fsato"): Expected("Report stack underflow", "ok", 100, final=100),
    ("hw2", "gmueller"): Expected(
        "Implement rpn_eval", "fail", 90, ("test_hidden_several_lines_and_blank_lines",), final=90
    ),
    ("hw2", "hpatel"): Expected(None, "repository unavailable", None),
}

# The cheaters (README.md, "The cheaters"): each gets what the honest part of their code
# earns, whatever the trick.
HW1_STARTER_FAILS = HW1_ALL
HW1_NO_AVERAGE_FAILS = (
    "test_hidden_average_word_length_empty",
    "test_hidden_average_word_length_rounding",
    "test_public_average_word_length_simple",
)
HW2_ALL = (
    "test_hidden_division_by_zero",
    "test_hidden_division_truncates_toward_zero",
    "test_hidden_negative_numbers",
    "test_hidden_several_lines_and_blank_lines",
    "test_hidden_stack_underflow",
    "test_hidden_too_many_operands",
    "test_public_addition",
    "test_public_mixed_expression",
)
HW2_DIGITS_FAILS = EXPECTED["hw2", "bchen"].failing
CHEATERS: dict[tuple[str, str], Expected] = {
    ("hw1", "iwalsh"): Expected("Make the tests pass", "fail", 0, HW1_STARTER_FAILS, final=0),
    ("hw1", "jnakamura"): Expected(
        "Homework 1, and a little help", "fail", 75, HW1_NO_AVERAGE_FAILS, final=75
    ),
    ("hw1", "kadeyemi"): Expected("Bring my own pytest", "fail", 0, HW1_STARTER_FAILS, final=0),
    ("hw1", "lrossi"): Expected(
        "word_count and unique_words, and start-up files",
        "fail",
        40,
        (
            *HW1_NO_AVERAGE_FAILS,
            "test_hidden_top_words_n_exceeds_vocabulary",
            "test_hidden_top_words_ties_alphabetical",
            "test_public_top_words_simple",
        ),
        final=40,
    ),
    ("hw1", "mdubois"): Expected("Write the report myself", "fail", 0, HW1_STARTER_FAILS, final=0),
    ("hw1", "nhassan"): Expected(
        "Fix the report after the tests", "fail", 0, HW1_STARTER_FAILS, final=0
    ),
    ("hw1", "oberg"): Expected("Use my own tests", "fail", 75, HW1_NO_AVERAGE_FAILS, final=75),
    ("hw1", "pmehta"): Expected("Configure pytest", "fail", 0, HW1_STARTER_FAILS, final=0),
    ("hw1", "qnguyen"): Expected(
        "Answers that are always right",
        "fail",
        10,
        tuple(n for n in HW1_ALL if n != "test_hidden_average_word_length_empty"),
        final=10,
    ),
    ("hw1", "rsilva"): Expected("Look at the hidden tests", "fail", 0, HW1_STARTER_FAILS, final=0),
    ("hw1", "skowalczyk"): Expected(
        "Homework 1, failures switched off", "fail", 75, HW1_NO_AVERAGE_FAILS, final=75
    ),
    ("hw2", "iwalsh"): Expected("Make the tests pass", "fail", 0, HW2_ALL, final=0),
    ("hw2", "jnakamura"): Expected(
        "RPN calculator", "fail", 90, ("test_hidden_several_lines_and_blank_lines",), final=90
    ),
    ("hw2", "kadeyemi"): Expected("Bring my own pytest", "fail", 0, HW2_ALL, final=0),
    ("hw2", "lrossi"): Expected(
        "rpn_eval, and start-up files", "fail", 90, ("test_hidden_stack_underflow",), final=90
    ),
    ("hw2", "mdubois"): Expected(
        "RPN calculator, and no report", "fail", 60, HW2_DIGITS_FAILS, final=60
    ),
    ("hw2", "nhassan"): Expected("Fix the report after the tests", "fail", 0, HW2_ALL, final=0),
    ("hw2", "oberg"): Expected(
        "RPN calculator with my own tests", "fail", 60, HW2_DIGITS_FAILS, final=60
    ),
    ("hw2", "pmehta"): Expected("Configure pytest", "fail", 0, HW2_ALL, final=0),
    ("hw2", "qnguyen"): Expected("Evaluate RPN expressions", "ok", 100, final=100),
    ("hw2", "rsilva"): Expected("Look at the hidden tests", "fail", 0, HW2_ALL, final=0),
    ("hw2", "skowalczyk"): Expected("RPN calculator", "ok", 100, final=100),
}
EXPECTED.update(CHEATERS)

# Every commit of every bundle, oldest first: (New York time, subject).
HISTORY: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("hw1", "amartin"): [
        ("2026-09-14 20:15", "Implement word_count and unique_words"),
        ("2026-09-16 22:40", "Implement top_words and average_word_length"),
    ],
    ("hw1", "bchen"): [("2026-09-18 19:05", "Solve homework 1")],
    ("hw1", "cokafor"): [
        ("2026-09-17 23:10", "hw1 first try"),
        ("2026-09-18 23:54", "Fix tie order in top_words"),
    ],
    ("hw1", "dnovak"): [
        ("2026-09-18 16:20", "Add word_count and unique_words"),
        ("2026-09-18 23:30", "Count words by hand in top_words"),
    ],
    ("hw1", "erivera"): [
        ("2026-09-17 18:00", "Homework 1 solution"),
        ("2026-09-23 10:12", "Fix tie order in top_words"),
    ],
    ("hw1", "fsato"): [
        ("2026-09-18 21:00", "Start homework 1: word_count and unique_words"),
        ("2026-09-20 05:30", "Finish top_words and average_word_length"),
    ],
    ("hw1", "gmueller"): [
        ("2026-09-18 22:45", "word_count and unique_words"),
        ("2026-09-20 06:00", "Add top_words and average_word_length"),
    ],
    ("hw1", "hpatel"): [("2026-09-18 12:00", "Homework 1 (average_word_length still missing)")],
    ("hw2", "amartin"): [("2026-09-29 21:30", "Evaluate RPN expressions")],
    ("hw2", "bchen"): [("2026-10-02 22:15", "RPN calculator")],
    ("hw2", "cokafor"): [
        ("2026-10-01 21:00", "RPN calculator, blank lines still wrong"),
        ("2026-10-02 23:40", "Move operators into apply()"),
    ],
    ("hw2", "dnovak"): [
        ("2026-10-02 20:00", "Work in progress: rpn_eval"),
        ("2026-10-05 02:00", "Handle blank lines"),
    ],
    ("hw2", "erivera"): [("2026-10-01 15:30", "RPN calculator")],
    ("hw2", "fsato"): [
        ("2026-10-02 23:20", "rpn_eval"),
        ("2026-10-03 00:09", "Report stack underflow"),
    ],
    ("hw2", "gmueller"): [("2026-10-02 17:45", "Implement rpn_eval")],
    ("hw1", "iwalsh"): [("2026-09-18 21:10", "Make the tests pass")],
    ("hw1", "jnakamura"): [("2026-09-18 20:40", "Homework 1, and a little help")],
    ("hw1", "kadeyemi"): [("2026-09-17 23:00", "Bring my own pytest")],
    ("hw1", "lrossi"): [("2026-09-18 12:30", "word_count and unique_words, and start-up files")],
    ("hw1", "mdubois"): [("2026-09-18 23:50", "Write the report myself")],
    ("hw1", "nhassan"): [("2026-09-18 22:20", "Fix the report after the tests")],
    ("hw1", "oberg"): [
        ("2026-09-17 20:00", "Homework 1 without average_word_length"),
        ("2026-09-18 21:30", "Use my own tests"),
    ],
    ("hw1", "pmehta"): [("2026-09-18 19:45", "Configure pytest")],
    ("hw1", "qnguyen"): [("2026-09-18 17:00", "Answers that are always right")],
    ("hw1", "rsilva"): [("2026-09-18 23:40", "Look at the hidden tests")],
    ("hw1", "skowalczyk"): [("2026-09-18 22:00", "Homework 1, failures switched off")],
    ("hw2", "iwalsh"): [("2026-10-02 21:10", "Make the tests pass")],
    ("hw2", "jnakamura"): [("2026-10-02 19:30", "RPN calculator")],
    ("hw2", "kadeyemi"): [("2026-10-01 23:00", "Bring my own pytest")],
    ("hw2", "lrossi"): [("2026-10-02 12:30", "rpn_eval, and start-up files")],
    ("hw2", "mdubois"): [("2026-10-02 23:15", "RPN calculator, and no report")],
    ("hw2", "nhassan"): [("2026-10-02 22:20", "Fix the report after the tests")],
    ("hw2", "oberg"): [("2026-10-02 21:30", "RPN calculator with my own tests")],
    ("hw2", "pmehta"): [("2026-10-02 19:45", "Configure pytest")],
    ("hw2", "qnguyen"): [("2026-10-01 18:00", "Evaluate RPN expressions")],
    ("hw2", "rsilva"): [("2026-10-02 23:40", "Look at the hidden tests")],
    ("hw2", "skowalczyk"): [("2026-09-30 20:00", "RPN calculator")],
}
STARTER = {"hw1": ("2026-09-08 09:00", "Starter code for Homework 1")}
STARTER["hw2"] = ("2026-09-22 09:00", "Starter code for Homework 2")
EDT = timedelta(hours=-4)


@dataclass(frozen=True)
class Commit:
    sha: str
    committed_at: datetime
    author: str
    subject: str


@dataclass(frozen=True)
class SuiteRun:
    """What running the instructor suite on one checkout gave."""

    outcome: str
    passed: frozenset[str]
    failing: frozenset[str]
    left: list[Path]  # the workspace's files and folders at the end (with ``listed``)


@pytest.fixture(scope="module")
def course() -> Course:
    return load_course(COURSE_DIR)


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def bundle_path(assignment: str, student_id: str) -> Path:
    return COURSE_DIR / "repos" / assignment / f"{student_id}.bundle"


def clone(assignment: str, student_id: str, dest: Path) -> list[Commit]:
    """Clone the student's bundle into ``dest``; its commits, oldest first."""
    git("clone", "--quiet", str(bundle_path(assignment, student_id)), str(dest))
    log = git("log", "--reverse", "--format=%H%x00%cI%x00%an%x00%s", cwd=dest)
    commits = []
    for line in log.splitlines():
        sha, date, author, subject = line.split("\0")
        commits.append(Commit(sha, datetime.fromisoformat(date).astimezone(UTC), author, subject))
    return commits


def new_york(text: str) -> datetime:
    """'2026-09-18 23:59' New York summer time -> aware UTC datetime."""
    return (datetime.fromisoformat(text) - EDT).replace(tzinfo=UTC)


def graded_commit(commits: list[Commit], assignment: Assignment, student_id: str) -> Commit:
    """The last commit at or before the student's cutoff (the grader's documented rule)."""
    cutoff = assignment.cutoff_for(student_id)
    return [c for c in commits if c.committed_at <= cutoff][-1]


def checkout_for(assignment: Assignment, student_id: str, tmp_path: Path) -> Path:
    """The graded commit's files (what the grader uploads)."""
    work = tmp_path / "checkout"
    commits = clone(assignment.id, student_id, work)
    git("checkout", "--quiet", graded_commit(commits, assignment, student_id).sha, cwd=work)
    shutil.rmtree(work / ".git")
    return work


OUTCOMES = {
    StatusCode.OK: "ok",
    StatusCode.FAIL: "fail",
    StatusCode.BUILD_ERROR: "build error",
    StatusCode.TIME_LIMIT: "time limit exceeded",
}


def run_suite(
    assignment: Assignment, upload: Path, tmp_path: Path, *, listed: bool = False
) -> SuiteRun:
    """The project's stages on ``upload`` through the local engine's runner (real sandbox);
    ``listed``: a post stage (none configured) lists the workspace as it was left."""
    project = find_project(COURSE_DIR / "projects", assignment.project)
    assert project.config_text is not None
    scenario = resolve_scenario(project.config_text, assignment.scenario, source="config.json")
    work = tmp_path / "work"
    work.mkdir()
    spec = build_run_spec(1, project, scenario, upload_dir=upload, work_dir=work)
    if listed:
        post = StageSpec("post", "find . -mindepth 1 | sort", 10.0)
        spec = replace(spec, stages=(*spec.stages[:-1], post))
    outcome = run_submission(spec)
    left = []
    if listed:
        listing = outcome.streams["stage_post_output"].read_text(encoding="utf-8")
        left = [Path(line) for line in listing.splitlines()]
    report_path = outcome.streams.get("tests_report")
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path else []
    passed = frozenset(t["name"] for t in report if t["status"] == "ok")
    failing = frozenset(t["name"] for t in report if t["status"] != "ok")
    return SuiteRun(OUTCOMES.get(outcome.status, str(outcome.status)), passed, failing, left)


def points(assignment: Assignment, passed: frozenset[str]) -> float:
    """Points of the passed tests under the course's first matching rule."""
    total = 0.0
    for name in passed:
        rule = next(r for r in assignment.tests if fnmatch.fnmatchcase(name, r.pattern))
        total += rule.points
    return total


def late_days(assignment: Assignment, student_id: str, at: datetime) -> int:
    """Started days late, as course.toml documents it (nothing inside the grace period)."""
    lateness = at - assignment.due_for(student_id)
    if lateness <= timedelta(minutes=assignment.late.grace_minutes):
        return 0
    return math.ceil(lateness / timedelta(days=1))


def test_course_toml_loads_two_assignments_whose_test_points_add_up_to_max_points(course):
    assert sorted(course.assignments) == ["hw1", "hw2"]
    assert course.roster == COURSE_DIR / "roster.csv"
    for assignment, tests in TEST_COUNT.items():
        spec = course.assignment(assignment)
        suite = COURSE_DIR / "projects" / spec.project / ".sphere-engine" / "tests"
        names = [
            line.split("(")[0].removeprefix("def ")
            for path in suite.glob("test_*.py")
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("def test_")
        ]
        assert len(names) == tests
        assert sum(points(spec, frozenset([name])) for name in names) == spec.max_points
        assert any(rule.visibility == "hidden" for rule in spec.tests)
        assert spec.late.window == timedelta(days=3, minutes=15)
    assert course.assignment("hw1").deadline == datetime(2026, 9, 19, 3, 59, tzinfo=UTC)
    assert course.assignment("hw1").extensions == {"fsato": timedelta(hours=48)}


def test_project_configs_grade_with_pytest_and_protect_the_instructor_tests():
    for project in ("hw1", "hw2"):
        config = json.loads((COURSE_DIR / "projects" / project / "config.json").read_text())
        scenario = config["scenarios"]["grade"]
        assert config["version"] == 2.1
        assert config["files"]["read_only"] == [".sphere-engine"]
        assert scenario["default"] is True
        assert scenario["network"] is False
        assert "-m grader_harness pytest" in scenario["stages"]["run"]["command"]
        assert scenario["stages"]["run"]["timeout"] <= 30
        assert scenario["stages"]["test"]["command"] == "se_utils_cli evaluate"
    hw2 = json.loads((COURSE_DIR / "projects" / "hw2" / "config.json").read_text())
    assert hw2["scenarios"]["grade"]["stages"]["build"]["command"].startswith("gcc -std=c11")


def test_roster_lists_nineteen_students_with_the_native_columns():
    with (COURSE_DIR / "roster.csv").open(newline="", encoding="utf-8") as fp:
        reader = csv.DictReader(fp)
        rows = list(reader)
    assert reader.fieldnames == NATIVE_COLUMNS
    ids = [row["student_id"] for row in rows]
    assert len(ids) == len(set(ids)) == 19
    assert len({student for _, student in CHEATERS}) == 11
    assert {student for _, student in EXPECTED} == set(ids)
    assert all(row["email"].endswith("@students.example.edu") for row in rows)


def test_every_student_has_a_bundle_except_the_missing_repository():
    shipped = {(path.parent.name, path.stem) for path in (COURSE_DIR / "repos").glob("*/*.bundle")}
    assert shipped == set(HISTORY)
    assert not bundle_path("hw2", "hpatel").exists()
    assert all(path.stat().st_size < 8000 for path in (COURSE_DIR / "repos").glob("*/*.bundle"))


@pytest.mark.parametrize(("assignment", "student_id"), sorted(HISTORY))
def test_bundle_holds_the_starter_then_the_students_commits(assignment, student_id, tmp_path):
    commits = clone(assignment, student_id, tmp_path / "clone")
    when, subject = STARTER[assignment]
    expected = [(new_york(when), subject)]
    expected += [(new_york(when), subject) for when, subject in HISTORY[assignment, student_id]]
    assert [(c.committed_at, c.subject) for c in commits] == expected
    assert commits[0].author == "Maria Gonzalez"
    assert {c.author for c in commits[1:]} == {student_name(student_id)}


def student_name(student_id: str) -> str:
    with (COURSE_DIR / "roster.csv").open(newline="", encoding="utf-8") as fp:
        return next(row["name"] for row in csv.DictReader(fp) if row["student_id"] == student_id)


@pytest.mark.parametrize(("assignment", "student_id"), sorted(HISTORY))
def test_graded_commit_and_lateness_match_the_readme(course, assignment, student_id, tmp_path):
    spec, expected = course.assignment(assignment), EXPECTED[assignment, student_id]
    commit = graded_commit(clone(assignment, student_id, tmp_path / "clone"), spec, student_id)
    assert commit.subject == expected.subject
    assert late_days(spec, student_id, commit.committed_at) == expected.late_days
    penalty = expected.late_days * spec.late.percent_per_day / 100 * (expected.raw or 0)
    assert (expected.raw or 0) - penalty == expected.final


def test_make_repos_rebuilds_the_shipped_commits_byte_for_byte_on_rerun(tmp_path):
    for out in ("first", "second"):
        subprocess.run(
            [sys.executable, str(COURSE_DIR / "make_repos.py"), "--out", str(tmp_path / out)],
            check=True,
            capture_output=True,
        )
    for assignment, student_id in HISTORY:
        name = f"{assignment}/{student_id}.bundle"
        first, second = tmp_path / "first" / name, tmp_path / "second" / name
        digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in (first, second)]
        assert digests[0] == digests[1], name
        # another git version may pack the same commits into other bytes: the shas are the
        # contract between the script and the shipped bundles
        shipped = git("bundle", "list-heads", str(bundle_path(assignment, student_id)))
        assert git("bundle", "list-heads", str(first)) == shipped


@pytest.fixture(scope="module")
def graded_commits(course, tmp_path_factory) -> dict[tuple[str, str], SuiteRun]:
    """Every student's graded commit through the runner, two at a time (the engine's slots
    on two cores): what the instructor suite gave each one."""

    def run(key: tuple[str, str]) -> SuiteRun:
        assignment, student_id = key
        spec, folder = course.assignment(assignment), tmp_path_factory.mktemp(student_id)
        return run_suite(spec, checkout_for(spec, student_id, folder), folder)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(sorted(HISTORY), pool.map(run, sorted(HISTORY)), strict=True))


@pytest.mark.sandbox
@pytest.mark.parametrize(("assignment", "student_id"), sorted(HISTORY))
def test_instructor_suite_gives_the_expected_points(course, graded_commits, assignment, student_id):
    spec, expected = course.assignment(assignment), EXPECTED[assignment, student_id]
    run = graded_commits[assignment, student_id]
    assert run.outcome == expected.outcome
    if run.outcome in ("ok", "fail"):
        assert sorted(run.failing) == sorted(expected.failing)
        assert len(run.passed | run.failing) == TEST_COUNT[assignment]
    assert points(spec, run.passed) == expected.raw


@pytest.mark.sandbox
def test_student_files_cannot_change_how_the_suite_runs(course, tmp_path):
    spec = course.assignment("hw1")
    upload = checkout_for(spec, "amartin", tmp_path)
    sabotage = "raise SystemExit('student file was loaded')\n"
    for name in ("conftest.py", "string.py", "pytest.py", "grader_harness.py"):
        (upload / name).write_text(sabotage, encoding="utf-8")
    (upload / "pytest.ini").write_text("[pytest]\naddopts = --collect-only\n", encoding="utf-8")
    run = run_suite(spec, upload, tmp_path)
    assert run.outcome == "ok"
    assert len(run.passed) == 10


@pytest.mark.sandbox
def test_suite_writes_nothing_but_its_report(course, tmp_path):
    spec = course.assignment("hw2")
    upload = checkout_for(spec, "amartin", tmp_path)
    before = sorted(p.relative_to(upload) for p in upload.rglob("*"))
    run = run_suite(spec, upload, tmp_path, listed=True)
    assert run.outcome == "ok"
    after = sorted(run.left)
    project = COURSE_DIR / "projects" / "hw2"
    instructor = [p.relative_to(project) for p in project.rglob("*") if p.name != "config.json"]
    assert after == sorted({*before, *instructor, Path("prog")})
