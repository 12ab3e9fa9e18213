"""Every command of DESIGN.md's command line through click's CliRunner on the sample course.

The sample course is copied to a module-wide folder and four hw1 students are graded once
(a subset: dnovak's run waits out its 5 s time limit). Then status, report, export (every
LMS) and doctor run on what that stored, and each command's --help lists the options
DESIGN.md documents.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from grader.cli import main
from tests.support.served import served_engine

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
CHOSEN = {"amartin": "100", "bchen": "65", "erivera": "85", "hpatel": "75"}
LOCAL = {"SPHERE_ENGINE_URL": None, "SPHERE_ENGINE_TOKEN": None}


def grader(*args: str | Path, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env={**LOCAL, **(env or {})})


@dataclass(frozen=True)
class Graded:
    course: Path
    result: Result


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    course = tmp_path_factory.mktemp("cli") / "sample_course"
    shutil.copytree(SAMPLE, course, ignore=shutil.ignore_patterns(".grader", "out"))
    chosen = [arg for student in CHOSEN for arg in ("-s", student)]
    return Graded(course, grader("grade", course, "-a", "hw1", *chosen, "--concurrency", "2"))


def gradebook(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fp:
        return {row["student_id"]: row for row in csv.DictReader(fp)}


def test_grade_of_chosen_students_exits_0_and_prints_their_scores(graded: Graded) -> None:
    result = graded.result
    assert result.exit_code == 0, result.output
    for student, score in CHOSEN.items():
        assert f"│ {student}" in result.output
        assert f"{score}/100" in result.output
    assert f"wrote {graded.course}/out/hw1/" in result.output
    # not a terminal: the table is written plainly, as rich draws it (tests/cli/test_tables.py)
    table = [line for line in result.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(table) > 4 + 4 and len({len(line) for line in table}) == 1, result.output
    assert not (graded.course / "out" / "hw2").exists()
    rows = gradebook(graded.course / "out" / "hw1" / "gradebook.csv")
    assert {s: r["score"] for s, r in rows.items() if r["status"] == "graded"} == {
        s: f"{score}.0" for s, score in CHOSEN.items()
    }
    assert rows["dnovak"]["outcome"] == "not graded yet"


def test_grade_exits_1_and_names_each_student_not_graded(graded: Graded, tmp_path: Path) -> None:
    result = grader("grade", graded.course, "-a", "hw2", "-s", "hpatel", "--out", tmp_path)

    assert result.exit_code == 1, result.output
    assert "NOT GRADED hw2/hpatel: repository unavailable:" in result.output
    assert (tmp_path / "hw2" / "gradebook.csv").is_file()  # --out is honoured
    assert "Traceback" not in result.output


def test_status_shows_commit_score_state_and_when_of_each_student(graded: Graded) -> None:
    result = grader("status", graded.course, "-a", "hw1", env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[2].strip(): line for line in result.output.splitlines() if "│ hw1" in line
    }
    assert sorted(rows) == sorted(gradebook(graded.course / "out" / "hw1" / "gradebook.csv"))
    book = gradebook(graded.course / "out" / "hw1" / "gradebook.csv")
    with (graded.course / "out" / "hw1" / "history.csv").open(newline="") as fp:
        graded_at = {row["student_id"]: row["graded_at"] for row in csv.DictReader(fp)}
    for student, score in CHOSEN.items():
        cells = [cell.strip() for cell in rows[student].split("│")[1:-1]]
        assert cells[3] == book[student]["commit"][:10]
        assert (cells[4], cells[5]) == (score, "graded")
        # in the course's time zone, as every page shows it
        at = datetime.fromisoformat(graded_at[student]).astimezone(ZoneInfo("America/New_York"))
        assert cells[6] == at.strftime("%Y-%m-%d %H:%M %Z")
    assert "never graded" in rows["dnovak"]


def test_report_rewrites_the_same_outputs_from_stored_results(graded: Graded) -> None:
    out = graded.course / "out" / "hw1"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for path in before:
        path.unlink()

    result = grader("report", graded.course, "-a", "hw1")

    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}/ (19 students)\n"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("lms", "files"),
    [
        ("canvas", ["canvas.csv"]),
        ("moodle", ["moodle.csv"]),
        ("blackboard", ["blackboard.csv"]),
        ("brightspace", ["brightspace.csv"]),
        ("gradescope", [f"results/{student}.json" for student in CHOSEN]),
    ],
)
def test_export_writes_each_lms_file_from_stored_grades(
    graded: Graded, tmp_path: Path, lms: str, files: list[str]
) -> None:
    result = grader("export", graded.course, "-a", "hw1", "--lms", lms, "--out", tmp_path)

    assert result.exit_code == 0, result.output
    for name in files:
        assert (tmp_path / "hw1" / name).is_file(), result.output
        assert f"wrote {tmp_path / 'hw1' / name}" in result.stdout
    assert "Traceback" not in result.output
    if lms == "gradescope":
        report = json.loads((tmp_path / "hw1" / "results" / "bchen.json").read_text())
        assert report["score"] == 65


def test_export_refuses_an_unknown_lms_and_a_missing_assignment(graded: Graded) -> None:
    unknown = grader("export", graded.course, "-a", "hw1", "--lms", "sakai")
    missing = grader("export", graded.course, "--lms", "canvas")

    assert unknown.exit_code == missing.exit_code == 2
    assert "'sakai' is not one of 'canvas', 'moodle', 'blackboard'" in unknown.output
    assert "Missing option '-a' / '--assignment'" in missing.output


def test_doctor_on_the_sample_course_reports_sandbox_engine_and_slots(graded: Graded) -> None:
    result = grader("doctor", graded.course)

    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0].split()[-1]: line for line in result.output.splitlines()}
    assert set(lines) >= {"config", "roster", "git", "hw1", "hw2", "sandbox", "engine", "slots"}
    assert lines["engine"].split()[0] == "ok"
    assert "local" in lines["engine"]
    assert lines["sandbox"].split()[0] in ("ok", "warning")
    assert any(kind in lines["sandbox"] for kind in ("bubblewrap", "unshare", "none"))
    slots = lines["slots"].split("slots: ")[1]
    assert slots.endswith("free") and " of " in slots


def test_doctor_exits_3_when_the_engine_refuses_the_token(graded: Graded, tmp_path: Path) -> None:
    projects = graded.course / "projects"
    with served_engine(projects, tmp_path / "engine", token="right") as engine:
        result = grader(
            "doctor", graded.course, "--engine", engine.url, env={"SPHERE_ENGINE_TOKEN": "wrong"}
        )

    assert result.exit_code == 3, result.output
    assert "refused the access token (401)" in result.output
    assert "wrong" not in result.output


def test_engine_serve_refuses_to_start_without_a_token(graded: Graded) -> None:
    result = grader("engine", "serve", "--projects", graded.course / "projects")

    assert result.exit_code == 2
    assert result.output == "error: set SPHERE_ENGINE_TOKEN to the token clients must send\n"


@pytest.mark.parametrize(
    ("command", "documented"),
    [
        (
            ["grade"],
            [
                "COURSE_DIR",
                "-a, --assignment",
                "-s, --student",
                "--force",
                "--engine URL",
                "--concurrency",
                "--out",
            ],
        ),
        (["status"], ["COURSE_DIR", "-a, --assignment"]),
        (["report"], ["COURSE_DIR"]),
        (
            ["export"],
            [
                "COURSE_DIR",
                "-a, --assignment",
                "--lms",
                "canvas|moodle|blackboard|brightspace|gradescope",
            ],
        ),
        (["doctor"], ["COURSE_DIR"]),
        (
            ["engine", "serve"],
            ["--projects", "--host", "--port", "--slots", "--data", "127.0.0.1", "8080"],
        ),
    ],
)
def test_help_of_every_command_lists_its_documented_options(
    command: list[str], documented: list[str]
) -> None:
    result = grader(*command, "--help")

    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help text wraps at the terminal width
    for option in documented:
        assert option in text, f"{' '.join(command)} --help lacks {option}"


def test_every_documented_command_is_listed_by_the_top_level_help() -> None:
    result = grader("--help")

    assert result.exit_code == 0
    for command in ("grade", "status", "report", "export", "doctor", "engine"):
        assert f"  {command} " in result.output
    assert grader("--version").output.startswith("grader, version ")
