"""Tokens as for the engine: a refused or accepted LMS token never reaches the output, the
logs, the state database or the exception (its text, its chain, its traceback)."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.errors import LmsUnauthorizedError
from tests.support.fake_canvas import FakeCanvas
from tests.support.fake_moodle import ASSIGNMENT, FakeMoodle
from tests.support.publish_kit import SCORES, make_course, run_publish, store_grades

REFUSED = "refused-token-6d0c2e91"  # what the instructor set; the LMS does not know it


def course_for(tmp_path: Path, to: str, url: str) -> Path:
    if to == "canvas":
        course = make_course(tmp_path, url)
    else:
        course = make_course(
            tmp_path, "https://canvas.invalid", extra=f'[lms.moodle]\nurl = "{url}"\n\n'
        )
        toml = course / "course.toml"
        toml.write_text(toml.read_text() + f'moodle_assignment_id = "{ASSIGNMENT}"\n')
    store_grades(course, SCORES)
    return course


def state_bytes(course: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (course / ".grader").rglob("*") if p.is_file())


@pytest.mark.parametrize("to", ["canvas", "moodle"])
def test_a_refused_token_is_nowhere_but_the_request(
    tmp_path: Path,
    canvas: FakeCanvas,
    moodle: FakeMoodle,
    caplog: pytest.LogCaptureFixture,
    to: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    course = course_for(tmp_path, to, canvas.url if to == "canvas" else moodle.url)
    variable = f"{to.upper()}_TOKEN"

    with pytest.raises(LmsUnauthorizedError) as raised:
        run_publish(course, to, {variable: REFUSED})
    result = CliRunner().invoke(
        main, ["publish", str(course), "-a", "hw1", "--to", to], env={variable: REFUSED}
    )

    assert result.exit_code == 3
    error = raised.value
    texts = [
        result.output,
        result.stderr,
        caplog.text,
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        repr(error.__cause__),
        repr(error.__context__),
    ]
    assert [text for text in texts if REFUSED in text] == []
    assert REFUSED.encode() not in state_bytes(course)
    # it did travel, where it belongs: the Authorization header, or Moodle's form field
    sent = canvas.authorizations if to == "canvas" else moodle.tokens
    assert sent == ({f"Bearer {REFUSED}"} if to == "canvas" else {REFUSED})
