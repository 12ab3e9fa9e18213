"""Bad course configuration, rosters and selections: one clear line, exit 2, nothing lost.

A tiny course is graded once (module-wide). Every case copies it with its state and
outputs, breaks one thing, and runs `grader grade` through click's CliRunner: the message
is one line naming the file and the key or line, the exit code is 2, there is no Python
traceback, and no output file changes. The breakage is then undone and `grader report`
still writes the outputs of the first run, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from grader.cli import main
from tests.badinput.conftest import NO_ENGINE, copy_of, outputs

Breakage = Callable[[Path], None]


def replace(name: str, old: str | bytes, new: str | bytes) -> Breakage:
    before = old.encode() if isinstance(old, str) else old
    after = new.encode() if isinstance(new, str) else new

    def edit(course: Path) -> None:
        path = course / name
        data = path.read_bytes()
        assert before in data, f"{before!r} is not in {name}"
        path.write_bytes(data.replace(before, after, 1))

    return edit


def write(name: str, data: bytes) -> Breakage:
    def edit(course: Path) -> None:
        (course / name).write_bytes(data)

    return edit


def directory_instead_of(name: str) -> Breakage:
    """An unreadable file, as root can have one: a folder where the file should be."""

    def edit(course: Path) -> None:
        (course / name).unlink()
        (course / name).mkdir()

    return edit


def nothing(course: Path) -> None:
    pass


# name: (breakage, extra arguments, the file named, what else the message must say)
CASES: dict[str, tuple[Breakage, list[str], str, list[str]]] = {
    "malformed toml": (
        replace("course.toml", "max_points = 10", "max_points = = 10"),
        [],
        "course.toml",
        ["invalid TOML", "line 10"],
    ),
    "unknown key": (
        replace("course.toml", "max_points = 10", "max_points = 10\nmax_point = 3"),
        [],
        "course.toml:assignments.calc.max_point",
        ["unknown key"],
    ),
    "unknown table": (
        replace("course.toml", "[course]", "[coarse]\nname = 'x'\n\n[course]"),
        [],
        "course.toml:coarse",
        ["unknown key"],
    ),
    "key of the wrong type": (
        replace("course.toml", "max_points = 10", 'max_points = "ten"'),
        [],
        "course.toml:assignments.calc.max_points",
        ["expected a number"],
    ),
    "required key missing": (
        replace("course.toml", 'repo = "repos/{student_id}"\n', ""),
        [],
        "course.toml:assignments.calc.repo",
        ["required key is missing"],
    ),
    "impossible date": (
        replace("course.toml", "2026-10-01T23:59:00Z", '"2026-13-01T23:59:00Z"'),
        [],
        "course.toml:assignments.calc.deadline",
        ["not a date and time", "2026-13-01"],
    ),
    "date without time zone": (
        replace("course.toml", "2026-10-01T23:59:00Z", "2026-10-01T23:59:00"),
        [],
        "course.toml:assignments.calc.deadline",
        ["needs a time zone"],
    ),
    "extension that is not a duration": (
        replace(
            "course.toml",
            "[assignments.calc.late]",
            '[assignments.calc.extensions]\ns01 = "two days"\n[assignments.calc.late]',
        ),
        [],
        "course.toml:assignments.calc.extensions.s01",
        ["not a duration", "'two days'"],
    ),
    "unknown visibility": (
        replace("course.toml", '"hidden"', '"secret"'),
        [],
        "course.toml:assignments.calc.tests.'test_hidden_*'.visibility",
        ["must be one of visible, hidden, after_due_date"],
    ),
    "duplicate student id": (
        replace("roster.csv", "s03,", "s02,"),
        [],
        "roster.csv:4",
        ["duplicate student id 's02'", "line 3"],
    ),
    "ids differing only in case": (
        replace("roster.csv", "s03,", "S02,"),
        [],
        "roster.csv:4",
        ["duplicate student id 'S02'"],
    ),
    "missing id column": (
        replace("roster.csv", "student_id,", "sid,"),
        [],
        "roster.csv:1",
        ["missing required column 'student_id'", "found: sid, name, email"],
    ),
    "empty roster file": (write("roster.csv", b""), [], "roster.csv", ["empty roster"]),
    "unterminated quote": (
        replace("roster.csv", "s03,Student 03", 's03,"Student 03'),
        [],
        "roster.csv:4",
        ["not valid CSV"],
    ),
    "roster not UTF-8": (
        replace("roster.csv", b"Student 05", b"Student \xff05"),
        [],
        "roster.csv",
        ["not UTF-8"],
    ),
    "roster is a folder": (
        directory_instead_of("roster.csv"),
        [],
        "roster.csv",
        ["cannot read the roster"],
    ),
    "unknown assignment": (
        nothing,
        ["-a", "hw9"],
        "course.toml",
        ["unknown assignment 'hw9'", "known: calc"],
    ),
    "unknown student": (nothing, ["-s", "zed"], "roster.csv", ["not on the roster: zed"]),
    "remote engine without a token": (
        nothing,
        ["--engine", "http://127.0.0.1:9/api/v1"],
        "course.toml:engine.token_env",
        ["needs an access token", "SPHERE_ENGINE_TOKEN"],
    ),
}


def assert_one_clear_line(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_exit_2_and_loses_no_results(
    graded: Path, tmp_path: Path, case: str
) -> None:
    breakage, extra, file, fragments = CASES[case]
    course = copy_of(graded, tmp_path)
    before = outputs(course)
    originals = {name: (course / name).read_bytes() for name in ("course.toml", "roster.csv")}
    breakage(course)

    result = CliRunner().invoke(main, ["grade", str(course), *extra], env=NO_ENGINE)

    assert_one_clear_line(result, 2, f"{course}/{file}", *fragments)
    assert outputs(course) == before
    for name, data in originals.items():
        path = course / name
        if path.is_dir():
            path.rmdir()
        path.write_bytes(data)
    for path in (course / "out").rglob("*"):
        if path.is_file():
            path.unlink()
    again = CliRunner().invoke(main, ["report", str(course)], env=NO_ENGINE)
    assert again.exit_code == 0, again.output
    assert outputs(course) == before


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["report"],
        ["export", "-a", "calc", "--lms", "canvas"],
        ["grade", "-s", "s01"],
    ],
)
def test_every_command_names_the_line_of_malformed_toml(
    graded: Path, tmp_path: Path, command: list[str]
) -> None:
    course = copy_of(graded, tmp_path)
    replace("course.toml", "max_points = 10", "max_points = = 10")(course)

    result = CliRunner().invoke(main, [command[0], str(course), *command[1:]], env=NO_ENGINE)

    assert_one_clear_line(result, 2, f"{course}/course.toml", "line 10")


def test_doctor_names_the_broken_config_and_exits_2(graded: Path, tmp_path: Path) -> None:
    course = copy_of(graded, tmp_path)
    replace("course.toml", "max_points = 10", "max_points = = 10")(course)

    result = CliRunner().invoke(main, ["doctor", str(course)], env=NO_ENGINE)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"config: {course}/course.toml: invalid TOML" in result.output


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("projects", "not a course folder: course.toml is missing"),
        ("nowhere", "not a directory"),
    ],
)
def test_a_folder_that_is_not_a_course_is_named(
    graded: Path, tmp_path: Path, where: str, message: str
) -> None:
    folder = graded / where
    for command in ("grade", "status", "report"):
        result = CliRunner().invoke(main, [command, str(folder)], env=NO_ENGINE)
        assert_one_clear_line(result, 2, f"{folder}: {message}")


def test_a_file_given_as_the_course_folder_is_a_usage_error(graded: Path) -> None:
    result = CliRunner().invoke(main, ["grade", str(graded / "roster.csv")], env=NO_ENGINE)

    assert result.exit_code == 2
    assert "is a file" in result.output
    assert "Traceback" not in result.output


def test_invalid_roster_row_is_reported_and_everyone_else_is_graded(
    graded: Path, tmp_path: Path
) -> None:
    course = copy_of(graded, tmp_path)
    with (course / "roster.csv").open("a") as fp:
        fp.write(",Nameless,nameless@example.edu\ncon,Reserved,con@example.edu\n")

    result = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "invalid roster row: roster.csv:14: empty student_id" in result.output
    assert "roster.csv:15: student_id 'con' is a reserved device name" in result.output
    assert "submissions created: 0, reused: 11" in result.output  # everyone else as before
