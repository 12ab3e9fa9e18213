"""Bad input found before anything runs: each is one clear line naming the file and key
or line, exit 2 (or 3 for the engine), and nothing graded earlier is lost."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from grader.cli import main
from tests.badinput.conftest import NO_ENGINE, copy_of, outputs
from tests.support.served import grader_env, served_engine


def one_error_line(result: Result) -> str:
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_course_toml_that_is_not_utf8_is_a_config_error(graded: Path, tmp_path: Path) -> None:
    course = copy_of(graded, tmp_path)
    (course / "course.toml").write_bytes(b"\xff\xfe[course]\n")

    result = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)

    assert result.exit_code == 2
    assert f"{course}/course.toml" in one_error_line(result)


def test_course_toml_that_is_a_folder_is_not_called_missing(graded: Path, tmp_path: Path) -> None:
    course = copy_of(graded, tmp_path)
    (course / "course.toml").unlink()
    (course / "course.toml").mkdir()

    result = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)

    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"{course}/course.toml" in line
    assert "missing" not in line


def test_state_folder_that_is_a_file_is_a_clear_error(graded: Path, tmp_path: Path) -> None:
    course = copy_of(graded, tmp_path)
    state = course / ".grader"
    for path in sorted(state.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    state.rmdir()
    state.write_text("not a folder")

    result = CliRunner().invoke(main, ["grade", str(course), "-s", "s01"], env=NO_ENGINE)

    assert result.exit_code == 2
    assert f"{state}" in one_error_line(result)


def test_output_folder_that_is_a_file_is_refused_before_anything_runs(
    graded: Path, tmp_path: Path
) -> None:
    course = copy_of(graded, tmp_path)
    shutil.rmtree(course / "out")
    (course / "out").write_text("")  # COURSE/out, the default: click does not check it

    result = CliRunner().invoke(main, ["grade", str(course), "--force", "-s", "s01"], env=NO_ENGINE)

    assert result.exit_code == 2
    assert f"{course}/out" in one_error_line(result)
    assert "submissions created" not in result.output  # refused before submitting


def test_roster_with_a_header_and_no_students_is_a_config_error(
    graded: Path, tmp_path: Path
) -> None:
    course = copy_of(graded, tmp_path)
    before = outputs(course)
    (course / "roster.csv").write_text("student_id,name,email\n")

    result = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)

    assert result.exit_code == 2
    assert f"{course}/roster.csv" in one_error_line(result)
    assert outputs(course) == before  # the gradebook is not emptied


def test_invalid_roster_row_names_the_roster_file_and_line(graded: Path, tmp_path: Path) -> None:
    course = copy_of(graded, tmp_path)
    with (course / "roster.csv").open("a") as fp:
        fp.write(",Nameless,nameless@example.edu\n")

    result = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)

    assert result.exit_code == 1
    assert "invalid roster row: " in result.output
    assert "roster.csv line 14" in result.output or "roster.csv:14" in result.output


def test_extension_for_a_student_not_on_the_roster_is_a_config_error(
    graded: Path, tmp_path: Path
) -> None:
    course = copy_of(graded, tmp_path)
    toml = course / "course.toml"
    toml.write_text(
        toml.read_text().replace(
            "[assignments.calc.late]",
            '[assignments.calc.extensions]\ns1 = "48h"\n[assignments.calc.late]',
        )
    )

    result = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)

    assert result.exit_code == 2  # a typo must not silently take an extension away
    assert "assignments.calc.extensions.s1" in one_error_line(result)


def grade_process(
    course: Path, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m grader grade` that must end within 20 s (it takes about 3 s when it does)."""
    env = {**grader_env(), **({"SPHERE_ENGINE_TOKEN": token} if token else {})}
    try:
        return subprocess.run(
            [sys.executable, "-m", "grader", "grade", str(course), *args],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"grader grade {' '.join(args)} hung") from exc


def test_missing_project_folder_is_a_config_error_naming_the_project(
    graded: Path, tmp_path: Path
) -> None:
    course = copy_of(graded, tmp_path)
    (course / "projects" / "calc").rename(course / "projects" / "calc-old")

    done = grade_process(course, "--force")

    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "course.toml:assignments.calc.project" in errors[0] or "projects/calc" in errors[0]


def test_engine_url_that_is_not_http_is_a_usage_error(graded: Path, tmp_path: Path) -> None:
    course = copy_of(graded, tmp_path)

    result = CliRunner().invoke(
        main,
        ["grade", str(course), "-s", "s01", "--engine", "ftp://engine.example.edu/api/v1"],
        env={**NO_ENGINE, "SPHERE_ENGINE_TOKEN": "t"},
    )

    assert result.exit_code == 2
    assert "http" in one_error_line(result)


def test_refused_token_ends_a_whole_course_run_with_exit_3_instead_of_hanging(
    graded: Path, tmp_path: Path
) -> None:
    token = "open-bugs-token"
    projects = graded / "projects"
    with served_engine(projects, tmp_path / "engine", token=token) as engine:
        url = engine.url
        for attempt in range(4):  # it hangs in about half of the runs
            course = copy_of(graded, tmp_path / str(attempt))
            done = grade_process(course, "--engine", url, token="wrong")
            assert done.returncode == 3, done.stderr
