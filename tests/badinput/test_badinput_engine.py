"""Bad projects and unusable engines: a broken config.json is a project error per student
(never a zero), an engine that refuses the token or cannot be reached exits 3, and no
stored result is lost. Some of these run `python -m grader` as a real process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from tests.badinput.conftest import NO_ENGINE, copy_of, outputs
from tests.support.served import free_port, grader_env, served_engine

CONFIG = Path("projects") / "calc" / "config.json"


def grader(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grader", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**grader_env(), **(env or {})},
        check=False,
    )


def comparable(files: dict[str, bytes], *roots: Path) -> dict[str, bytes]:
    """Outputs but history.csv (a line per grade recorded, by design), each root as ROOT.

    Tests grade a copy of the course: s07's "repository does not exist" names its path
    (in Markdown with its punctuation escaped).
    """
    spelled = re.compile(
        b"|".join(b"".join(rb"\\?" + re.escape(bytes([c])) for c in bytes(r)) for r in roots)
    )
    return {
        name: spelled.sub(b"ROOT", data)
        for name, data in files.items()
        if not name.endswith("/history.csv")
    }


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        (lambda p: p.write_text("{not json"), "not valid JSON"),
        (lambda p: (p.unlink(), p.mkdir()), "config.json"),
        (
            lambda p: p.write_text(
                json.dumps({"version": 2.1, "scenarios": {"grade": {"stages": {"run": 5}}}})
            ),
            "config.json",
        ),
    ],
    ids=["not JSON", "a folder", "a stage that is not a table"],
)
def test_broken_project_config_is_a_project_error_and_fixing_it_restores_the_grades(
    graded: Path, tmp_path: Path, breakage: object, named: str
) -> None:
    course = copy_of(graded, tmp_path)
    before, original = outputs(course), (course / CONFIG).read_bytes()
    breakage(course / CONFIG)  # type: ignore[operator]

    broken = CliRunner().invoke(main, ["grade", str(course), "-s", "s01"], env=NO_ENGINE)

    assert broken.exit_code == 1, broken.output
    assert "NOT GRADED calc/s01: project error: the assignment's project configuration" in (
        broken.output
    )
    row = next(
        line
        for line in outputs(course)["calc/gradebook.csv"].decode().splitlines()
        if line.startswith("s01,")
    )
    assert ",,10.0,not graded," in row  # no score, never a zero
    instructor = outputs(course)["calc/instructor/s01.md"].decode()
    assert "project error" in instructor
    assert named in instructor  # the engine's reason, for the instructor
    feedback = outputs(course)["calc/feedback/s01.md"].decode()
    assert "Not graded: project error." in feedback
    assert named not in feedback or named == "config.json"  # no engine internals for students

    if (course / CONFIG).is_dir():
        (course / CONFIG).rmdir()
    (course / CONFIG).write_bytes(original)
    fixed = CliRunner().invoke(main, ["grade", str(course)], env=NO_ENGINE)

    assert fixed.exit_code == 1, fixed.output  # s07 still has no repository
    assert "submissions created: 0, reused: 11" in fixed.output  # the earlier results
    assert comparable(outputs(course), course, graded) == comparable(before, graded)


def test_malformed_toml_in_a_real_process_is_one_line_on_stderr_and_exit_2(
    graded: Path, tmp_path: Path
) -> None:
    course = copy_of(graded, tmp_path)
    toml = course / "course.toml"
    toml.write_text(toml.read_text().replace("max_points = 10", "max_points = = 10"))

    done = grader("grade", str(course))

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {toml}: invalid TOML: Invalid value (at line 10, column 14)"
    ]
    assert done.stdout == ""


TOKEN = "badinput-engine-token"


def test_engine_refusing_the_token_exits_3_and_keeps_the_results(
    graded: Path, tmp_path: Path
) -> None:
    course = copy_of(graded, tmp_path)
    before = outputs(course)
    with served_engine(course / "projects", tmp_path / "engine", token=TOKEN) as engine:
        url = engine.url
        done = grader(
            "grade",
            str(course),
            "-s",
            "s01",  # one student: see the report on runs that hang when others are cancelled
            "--engine",
            url,
            env={"SPHERE_ENGINE_TOKEN": "not-the-token"},
        )

    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [
        "error: GET /api/v1/test: unauthorized access (HTTP 401, error_code 1); the engine "
        "refused the access token: check SPHERE_ENGINE_TOKEN"
    ]
    assert "not-the-token" not in done.stdout + done.stderr
    assert comparable(outputs(course), course, graded) == comparable(before, graded)


@pytest.mark.slow  # the client retries for about 13 s before it gives up
def test_unreachable_engine_exits_3_and_keeps_the_results(graded: Path, tmp_path: Path) -> None:
    course = copy_of(graded, tmp_path)
    before = outputs(course)
    url = f"http://127.0.0.1:{free_port()}/api/v1"

    done = grader("grade", str(course), "--engine", url, env={"SPHERE_ENGINE_TOKEN": TOKEN})

    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "ConnectError" in errors[0]
    assert comparable(outputs(course), course, graded) == comparable(before, graded)
