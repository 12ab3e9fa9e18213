"""course.toml parsing: values, defaults and errors that name the file and key."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.config import load_course, parse_duration
from grader.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
[course]
name = "CS 1"

[assignments.hw1]
deadline = 2026-10-01T23:59:00Z
repo = "repos/{student_id}"
"""


def write_course(tmp_path: Path, text: str) -> Path:
    (tmp_path / "course.toml").write_text(text)
    return tmp_path


def test_example_config_documents_every_key_and_loads(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.example.toml", tmp_path / "course.toml")
    course = load_course(tmp_path)
    hw1 = course.assignment("hw1")
    assert course.engine.url == "https://<customer>.containers.sphere-engine.com/api/v1"
    assert hw1.extensions["alice"] == timedelta(hours=48)
    assert hw1.late.percent_per_day == 10
    assert [r.visibility for r in hw1.tests] == ["visible", "hidden"]
    assert hw1.lms["canvas_assignment_id"] == "12345"
    assert hw1.hidden_files == ("data/expected_*.txt",)
    assert hw1.similarity_threshold == 0.5


def test_minimal_course_gets_defaults_and_local_engine(tmp_path: Path) -> None:
    course = load_course(write_course(tmp_path, MINIMAL))
    hw1 = course.assignment("hw1")
    assert course.engine.url is None
    assert hw1.project == "hw1" and hw1.title == "hw1" and hw1.max_points == 100
    assert hw1.deadline == datetime(2026, 10, 1, 23, 59, tzinfo=UTC)
    assert hw1.cutoff_for("anyone") == hw1.deadline


def test_cutoff_adds_extension_grace_and_late_window(tmp_path: Path) -> None:
    text = MINIMAL + (
        "[assignments.hw1.late]\ngrace_minutes = 15\nmax_days = 2\n"
        '[assignments.hw1.extensions]\nalice = "1d"\n'
    )
    hw1 = load_course(write_course(tmp_path, text)).assignment("hw1")
    assert hw1.due_for("alice") == hw1.deadline + timedelta(days=1)
    assert hw1.cutoff_for("alice") == hw1.deadline + timedelta(days=3, minutes=15)
    assert hw1.cutoff_for("bob") == hw1.deadline + timedelta(days=2, minutes=15)


def test_naive_deadline_uses_course_timezone(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "CS 1"', 'name = "CS 1"\ntimezone = "Europe/Warsaw"')
    text = text.replace("2026-10-01T23:59:00Z", "2026-10-01T23:59:00")
    hw1 = load_course(write_course(tmp_path, text)).assignment("hw1")
    assert hw1.deadline == datetime(2026, 10, 1, 21, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda t: t.replace("[course]", "[course]\nnmae = 1"), "course.nmae"),
        (lambda t: t.replace('repo = "repos/{student_id}"', ""), "assignments.hw1.repo"),
        (lambda t: t.replace("2026-10-01T23:59:00Z", '"soon"'), "assignments.hw1.deadline"),
        (
            lambda t: t.replace("2026-10-01T23:59:00Z", "2026-10-01T23:59:00"),
            "assignments.hw1.deadline",
        ),
        (
            lambda t: t + '[assignments.hw1.extensions]\nbob = "two days"\n',
            "assignments.hw1.extensions.bob",
        ),
        (
            lambda t: t + '[assignments.hw1.tests]\n"t*" = { points = 1, visibility = "secret" }\n',
            "visibility",
        ),
        (lambda t: t + "similarity_threshold = 1.5\n", "assignments.hw1.similarity_threshold"),
        (lambda t: t + "[engine]\nconcurrency = 0\n", "engine.concurrency"),
        (lambda t: t + '[engine]\nurl = "ftp://x"\n', "engine.url"),
        (
            lambda t: t + "[assignments.hw1.late]\npercent_per_day = true\n",
            "assignments.hw1.late.percent_per_day",
        ),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, edit, where: str) -> None:  # type: ignore[no-untyped-def]
    write_course(tmp_path, edit(MINIMAL))
    with pytest.raises(ConfigError) as info:
        load_course(tmp_path)
    assert str(tmp_path / "course.toml") in str(info.value)
    assert where in str(info.value)
    assert info.value.exit_code == 2


def test_malformed_toml_reports_line(tmp_path: Path) -> None:
    write_course(tmp_path, "[course]\nname = \n")
    with pytest.raises(ConfigError, match=r"course.toml: invalid TOML: .*line 2"):
        load_course(tmp_path)


def test_folder_without_course_toml_is_not_a_course(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a course folder"):
        load_course(tmp_path)


def test_unknown_assignment_lists_known_ones(tmp_path: Path) -> None:
    course = load_course(write_course(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"unknown assignment 'hw9' \(known: hw1\)"):
        course.assignment("hw9")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("48h", timedelta(hours=48)),
        ("2d", timedelta(days=2)),
        ("1d12h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
        ("1w", timedelta(days=7)),
        ("30 min", timedelta(minutes=30)),
    ],
)
def test_parse_duration_accepts_common_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "two days", "1x", "h", "1d-2h"])
def test_parse_duration_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
