"""`export`: stored grades in a real SQLite state -> LMS files under OUT/<assignment>/."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from grader.cli import export_command
from grader.codec import to_json
from grader.config import load_course
from grader.errors import ConfigError, ExportError
from grader.exporting import export
from grader.records import StudentOutcome
from grader.reports.lms import FORMATS, LMS_CHOICES, LMS_OPTIONS, LMS_SETTINGS
from grader.roster import load_roster
from grader.state import open_state

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"  # 15 points


def cells(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """The sample course's configuration and roster, with its state in tmp_path."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("course.toml", "roster.csv"):
        shutil.copy(SAMPLE / name, root / name)
    return root


def store(course: Path, outcomes: list[StudentOutcome]) -> None:
    """Record outcomes as one run does: one grade row per student, JSON through the codec."""
    state_dir = load_course(course).state_dir
    with open_state(state_dir) as state:
        run_id = state.start_run(engine="test", assignments=["hw1", "hw2"])
        for o in outcomes:
            score = o.grade.score if o.grade and o.status == "graded" else None
            state.record_grade(
                run_id,
                o.assignment.id,
                o.student.student_id,
                status=o.status,
                score=score,
                outcome_json=to_json(o),
            )


@pytest.fixture
def roster_outcome(course: Path, make_outcome: MakeOutcome) -> Callable[..., StudentOutcome]:
    students = {s.student_id: s for s in load_roster(course / "roster.csv")}

    def build(student_id: str, assignment: str = "hw1", **changes: object) -> StudentOutcome:
        return make_outcome(student_id, assignment, student=students[student_id], **changes)

    return build


def test_canvas_export_writes_every_roster_student_from_the_latest_stored_grade(
    course: Path, roster_outcome: Callable[..., StudentOutcome]
) -> None:
    store(course, [roster_outcome("bchen", outcome="ok"), roster_outcome("amartin")])
    store(course, [roster_outcome("bchen", failing={HIDDEN_FAIL: "x"})])  # a later run
    result = export(course, "hw1", "canvas")
    path = course / "out" / "hw1" / "canvas.csv"
    assert result.paths == (path,)
    assert (result.lms, result.assignment, result.rows) == ("canvas", "hw1", 19)
    rows = cells(path)
    assert rows[0][-1] == "Homework 1: Text statistics (40101)"
    assert [row[2] for row in rows[2:]] == [f"20261{n:03}" for n in range(1, 20)]  # roster order
    scores = {row[3]: row[5] for row in rows[2:]}
    assert scores["amartin"] == "100"
    assert scores["bchen"] == "85"
    assert scores["hpatel"] == ""  # never graded: blank, never 0
    assert any("hpatel" in w for w in result.warnings)


def test_export_is_read_only_and_gives_the_same_bytes_twice(
    course: Path, roster_outcome: Callable[..., StudentOutcome]
) -> None:
    store(course, [roster_outcome("amartin"), roster_outcome("bchen")])
    state_file = load_course(course).state_dir / "state.sqlite3"
    first = export(course, "hw1", "moodle").paths[0].read_bytes()
    with open_state(load_course(course).state_dir) as state:
        grades = len(state.grade_history("hw1"))
    again = export(course, "hw1", "moodle").paths[0].read_bytes()
    assert first == again
    with open_state(state_file.parent) as state:
        assert len(state.grade_history("hw1")) == grades == 2
    assert b"hpatel@students.example.edu,-," in first


def test_gradescope_export_writes_results_per_student_and_removes_stale_ones(
    course: Path, roster_outcome: Callable[..., StudentOutcome], tmp_path: Path
) -> None:
    store(course, [roster_outcome("amartin"), roster_outcome("bchen")])
    out = tmp_path / "elsewhere"
    first = export(course, "hw1", "gradescope", out_dir=out)
    folder = out / "hw1" / "results"
    assert first.paths == (folder / "amartin.json", folder / "bchen.json")
    store(course, [roster_outcome("bchen", status="not graded", outcome="infrastructure")])
    second = export(course, "hw1", "gradescope", out_dir=out)
    assert second.paths == (folder / "amartin.json",)
    assert second.removed == (folder / "bchen.json",)
    assert sorted(p.name for p in folder.iterdir()) == ["amartin.json"]


def test_blackboard_export_can_be_tab_delimited(
    course: Path, roster_outcome: Callable[..., StudentOutcome]
) -> None:
    store(course, [roster_outcome("amartin")])
    result = export(course, "hw1", "Blackboard", tabs=True)
    assert result.paths == (course / "out" / "hw1" / "blackboard.txt",)
    assert result.paths[0].read_bytes().startswith(b"Username\tHomework 1: Text statistics\r\n")


@pytest.mark.parametrize(
    ("lms", "tabs", "message"),
    [
        ("webct", False, "unknown LMS 'webct' .*canvas, moodle, blackboard, brightspace"),
        ("canvas", True, "tab-delimited output is a Blackboard option"),
    ],
)
def test_an_lms_choice_that_cannot_be_written_is_a_config_error(
    course: Path, lms: str, tabs: bool, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        export(course, "hw1", lms, tabs=tabs)


def test_an_unknown_assignment_is_a_config_error_naming_the_known_ones(course: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown assignment 'hw9' \(known: hw1, hw2\)"):
        export(course, "hw9", "canvas")


def test_export_without_any_stored_grade_fails_and_creates_no_state(course: Path) -> None:
    with pytest.raises(ExportError, match="run `grader grade` first"):
        export(course, "hw1", "canvas")
    assert not (course / ".grader").exists()
    assert not (course / "out").exists()


def test_export_when_no_student_of_the_assignment_is_graded_fails(
    course: Path, roster_outcome: Callable[..., StudentOutcome]
) -> None:
    store(course, [roster_outcome("hpatel", "hw2", status="not graded", outcome="infrastructure")])
    with pytest.raises(ExportError, match="no student is graded yet"):
        export(course, "hw2", "canvas")


def test_export_stops_before_writing_when_students_lack_an_identity(
    course: Path, roster_outcome: Callable[..., StudentOutcome]
) -> None:
    (course / "roster.csv").write_text(
        "student_id,name,email\namartin,Alice Martin,\nbchen,Bo Chen,bchen@x.edu\ncokafor,C,\n",
        encoding="utf-8",
    )
    store(course, [roster_outcome("bchen")])
    with pytest.raises(ExportError) as caught:
        export(course, "hw1", "moodle")
    message = str(caught.value)
    assert "amartin (roster line 2): no email" in message
    assert "cokafor (roster line 4): no email" in message
    assert not (course / "out").exists()


def test_export_takes_identities_from_the_roster_as_it_is_now(
    course: Path, roster_outcome: Callable[..., StudentOutcome]
) -> None:
    store(course, [roster_outcome("amartin")])  # graded while the roster had canvas ids
    roster = (course / "roster.csv").read_text(encoding="utf-8")
    (course / "roster.csv").write_text(roster.replace(",5001\n", ",9001\n"), encoding="utf-8")
    rows = cells(export(course, "hw1", "canvas").paths[0])
    assert rows[2][1:4] == ["9001", "20261001", "amartin"]
    assert rows[2][5] == "100"


def test_each_format_declares_the_course_keys_and_export_flags_it_takes() -> None:
    assert LMS_CHOICES == ("canvas", "moodle", "blackboard", "brightspace", "gradescope")
    assert set(LMS_SETTINGS) == {
        "canvas_assignment_id",
        "blackboard_column_id",
        "brightspace_item",
        "moodle_identity",
        "moodle_allow_over_100",
        "moodle_assignment_id",  # read by grader publish --to moodle
    }
    assert [(f.name, o.name) for f in FORMATS.values() for o in f.options] == [
        ("blackboard", "tabs")
    ]
    flags = {p.name for p in export_command.params}
    assert {o.name for o in LMS_OPTIONS} <= flags
