"""`grader doctor` on a course with [lms.canvas] / [lms.moodle], against the fakes on loopback.

Each LMS gets a line for the site (token variable set, site answering, token accepted)
and one for the assignment ids; a token's value never appears in either.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.config import load_course
from grader.publish.probe import LmsCheck, lms_checks
from tests.support.fake_canvas import TOKEN as CANVAS_TOKEN
from tests.support.fake_canvas import FakeCanvas
from tests.support.fake_moodle import ASSIGNMENT, FakeMoodle
from tests.support.fake_moodle import TOKEN as MOODLE_TOKEN
from tests.support.publish_kit import Waits, make_course
from tests.support.served import free_port


def checks(course: Path, **environ: str) -> dict[str, LmsCheck]:
    found = lms_checks(load_course(course), environ, sleep=Waits())
    return {c.name: c for c in found}


def canvas_course(tmp_path: Path, url: str) -> Path:
    return make_course(tmp_path, url)


def moodle_course(tmp_path: Path, url: str) -> Path:
    course = make_course(
        tmp_path, "https://canvas.invalid", extra=f'[lms.moodle]\nurl = "{url}"\n\n'
    )
    toml = course / "course.toml"
    text = toml.read_text().replace('[lms.canvas]\nurl = "https://canvas.invalid"\n', "")
    text = text.replace("course_id = 7\n", "", 1)
    toml.write_text(text + f'moodle_assignment_id = "{ASSIGNMENT}"\n')
    return course


def test_canvas_accepted_token_and_known_assignment(tmp_path: Path, canvas: FakeCanvas) -> None:
    found = checks(canvas_course(tmp_path, canvas.url), CANVAS_TOKEN=CANVAS_TOKEN)

    assert set(found) == {"canvas", "canvas-assignments"}
    assert found["canvas"].level == "ok"
    assert "course 7 (Publish 101)" in found["canvas"].message
    assert "CANVAS_TOKEN is accepted" in found["canvas"].message
    assert found["canvas-assignments"] == LmsCheck(
        "canvas-assignments", "ok", "hw1 -> 5 Homework 1"
    )
    assert canvas.count("GET", "/courses/7$") == 1
    assert canvas.count("GET", "/courses/7/assignments/5$") == 1


def test_canvas_refused_token_is_an_error_that_names_the_variable_only(
    tmp_path: Path, canvas: FakeCanvas
) -> None:
    found = checks(canvas_course(tmp_path, canvas.url), CANVAS_TOKEN="wrong-token-8812")

    assert list(found) == ["canvas"]
    assert found["canvas"].level == "error"
    assert found["canvas"].message == f"{canvas.url} refused the token in CANVAS_TOKEN"
    assert canvas.count("GET", "/assignments/") == 0


def test_canvas_token_not_set_is_a_warning(tmp_path: Path, canvas: FakeCanvas) -> None:
    found = checks(canvas_course(tmp_path, canvas.url))
    assert found["canvas"].level == "warning"
    assert "CANVAS_TOKEN is not set" in found["canvas"].message


def test_unreachable_canvas_is_an_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    found = checks(canvas_course(tmp_path, url), CANVAS_TOKEN=CANVAS_TOKEN)
    assert found["canvas"].level == "error"
    assert f"{url} cannot be reached" in found["canvas"].message
    assert CANVAS_TOKEN not in found["canvas"].message


def test_an_assignment_id_canvas_does_not_know_is_an_error(
    tmp_path: Path, canvas: FakeCanvas
) -> None:
    canvas.assignments = {"6"}
    found = checks(canvas_course(tmp_path, canvas.url), CANVAS_TOKEN=CANVAS_TOKEN)
    assert found["canvas"].level == "ok"
    assert found["canvas-assignments"] == LmsCheck(
        "canvas-assignments", "error", "not found: hw1 (canvas_assignment_id 5)"
    )


def test_moodle_accepted_token_and_known_assignment(tmp_path: Path, moodle: FakeMoodle) -> None:
    found = checks(moodle_course(tmp_path, moodle.url), MOODLE_TOKEN=MOODLE_TOKEN)

    assert set(found) == {"moodle", "moodle-assignments"}
    assert found["moodle"].level == "ok"
    assert "(Fake Moodle)" in found["moodle"].message
    assert found["moodle-assignments"].message == f"hw1 -> {ASSIGNMENT} Homework 1"
    assert moodle.count("core_webservice_get_site_info") == 1


def test_moodle_refused_token_and_unreachable_site(tmp_path: Path, moodle: FakeMoodle) -> None:
    refused = checks(moodle_course(tmp_path / "a", moodle.url), MOODLE_TOKEN="nope-5150")
    assert refused["moodle"] == LmsCheck(
        "moodle", "error", f"{moodle.url} refused the token in MOODLE_TOKEN"
    )
    url = f"http://127.0.0.1:{free_port()}"
    gone = checks(moodle_course(tmp_path / "b", url), MOODLE_TOKEN=MOODLE_TOKEN)
    assert gone["moodle"].level == "error"
    assert "cannot be reached" in gone["moodle"].message


def test_a_moodle_service_without_what_publish_needs_is_named(
    tmp_path: Path, moodle: FakeMoodle
) -> None:
    moodle.functions = ["core_webservice_get_site_info", "mod_assign_get_grades"]
    found = checks(moodle_course(tmp_path, moodle.url), MOODLE_TOKEN=MOODLE_TOKEN)
    assert found["moodle"].level == "error"
    assert "lacks core_user_get_users_by_field, mod_assign_save_grades" in found["moodle"].message
    assert found["moodle-assignments"].level == "warning"


@pytest.mark.parametrize("token", [CANVAS_TOKEN, "wrong-token-8812"])
def test_doctor_prints_the_lms_lines_and_never_the_token(
    tmp_path: Path, canvas: FakeCanvas, token: str
) -> None:
    course = canvas_course(tmp_path, canvas.url)
    result = CliRunner().invoke(
        main,
        ["doctor", str(course)],
        env={"CANVAS_TOKEN": token, "SPHERE_ENGINE_URL": None, "SPHERE_ENGINE_TOKEN": None},
    )
    lines = {line.split(":")[0].split()[-1]: line for line in result.output.splitlines()}
    assert "canvas" in lines, result.output
    assert lines["canvas"].split()[0] == ("ok" if token == CANVAS_TOKEN else "error")
    assert token not in result.output
    if token != CANVAS_TOKEN:
        assert result.exit_code in (2, 3)  # the refused token is an error
