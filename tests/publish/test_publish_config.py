"""`[lms]` in course.toml: the Canvas and Moodle sites and the feedback branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.config import DEFAULT_CANVAS_TOKEN_ENV, load_course
from grader.errors import ConfigError

BASE = """[course]
name = "C"

[assignments.hw1]
deadline = 2026-10-01T23:59:00Z
repo = "repos/{student_id}"
"""


def course(tmp_path: Path, lms: str) -> Path:
    (tmp_path / "course.toml").write_text(lms + "\n" + BASE)
    return tmp_path


def test_canvas_settings_are_read_with_their_defaults(tmp_path: Path) -> None:
    loaded = load_course(
        course(tmp_path, '[lms.canvas]\nurl = "https://canvas.uni.edu/"\ncourse_id = 77')
    )
    assert loaded.lms.canvas is not None
    assert loaded.lms.canvas.url == "https://canvas.uni.edu"
    assert loaded.lms.canvas.course_id == "77"
    assert loaded.lms.canvas.token_env == DEFAULT_CANVAS_TOKEN_ENV
    assert loaded.lms.canvas.attach_feedback is False
    assert loaded.lms.moodle is None
    assert loaded.lms.git.branch == "feedback"


def test_moodle_settings_are_read_with_their_defaults(tmp_path: Path) -> None:
    loaded = load_course(course(tmp_path, '[lms.moodle]\nurl = "https://moodle.uni.edu"'))
    assert loaded.lms.moodle is not None
    assert loaded.lms.moodle.token_env == "MOODLE_TOKEN"
    assert loaded.lms.moodle.attach_feedback is False


def test_a_course_without_lms_has_none(tmp_path: Path) -> None:
    assert load_course(course(tmp_path, "")).lms.canvas is None


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ('[lms.canvas]\nurl = "https://c.edu"\ncourse_id = 1\ntoken = "x"', "lms.canvas.token"),
        ('[lms.moodle]\nurl = "https://m.edu"\ntoken = "x"', "lms.moodle.token"),
        ('[lms.canvas]\nurl = "canvas.edu"\ncourse_id = 1', "lms.canvas.url"),
        ('[lms.canvas]\nurl = "https://c.edu"\ncourse_id = "CS 101"', "lms.canvas.course_id"),
        ('[lms.canvas]\nurl = "https://c.edu"', "lms.canvas.course_id"),
        ('[lms.blackboard]\nurl = "https://c.edu"', "lms.blackboard"),
        ('[lms.git]\nbranch = "../main"', "lms.git.branch"),
        (
            '[lms.canvas]\nurl = "https://c.edu"\ncourse_id = 1\nattach_feedback = "yes"',
            "lms.canvas.attach_feedback",
        ),
        ('[lms.moodle]\nurl = "https://m.edu"\nattach_feedback = 1', "lms.moodle.attach_feedback"),
    ],
)
def test_a_wrong_lms_key_is_named(tmp_path: Path, table: str, where: str) -> None:
    with pytest.raises(ConfigError, match=rf"{where}:"):
        load_course(course(tmp_path, table))
