"""Integrity flags through a whole run on the built-in engine: raised from what the engine
reports, stored in SQLite, shown to the instructor (page, dashboard, gradebook), re-rendered
by `grader report`, and never shown to a student."""

from __future__ import annotations

import csv
import html
import json
import shutil
from pathlib import Path

import pytest

from grader.exporting import export
from grader.grading import GradeOptions, grade, report
from grader.integrity import FLAG_KINDS
from tests.support.repos import GOOD, HALF, ON_TIME, commit

# The instructor's checks. What each student's evidence looks like is decided here, from a
# marker in their solution, so the run shows each kind of disagreement whatever the
# engine lets student code do.
CHECK = """
import os, sys
workspace = os.environ["SE_PATH_WORKSPACE"]
sys.path.append(workspace)
source = open(os.path.join(workspace, "solution.py")).read()
import solution
CHECKS = {
    "test_public_add": "add(2, 3) == 5",
    "test_public_mul": "mul(2, 3) == 6",
    "test_hidden_add_negative": "add(-2, -3) == -5",
}
passed = {name: bool(eval(check, vars(solution))) for name, check in CHECKS.items()}
names = list(CHECKS)
if "FORGE" in source:  # the report says all passed, the run stage says otherwise
    passed = dict.fromkeys(names, True)
if "UNKNOWN" in source:
    names, passed["test_made_up"] = ["test_public_add", "test_made_up"], True
if "TWICE" in source:
    names.append("test_public_add")
cases = "".join(
    f'<testcase classname="checks" name="{n}">{"" if passed[n] else "<failure/>"}</testcase>'
    for n in names
)
if "NO-REPORT" not in source:
    with open(os.environ["SE_PATH_UNIT_TESTS_REPORT"], "w") as out:
        out.write(f'<testsuite name="checks" tests="{len(names)}">{cases}</testsuite>')
sys.exit(1 if "FORGE" in source or not all(passed[n] for n in names) else 0)
"""

CONFIG = {
    "version": 2.1,
    "scenarios": {
        "grade": {
            "default": True,
            "network": False,
            "stages": {
                "run": {"command": "python3 -B -P .sphere-engine/check.py", "timeout": 20},
                "test": {"command": "se_utils_cli evaluate", "timeout": 10},
            },
        }
    },
    "files": {"read_only": [".sphere-engine"]},
}

STUDENTS = {
    "honest": {"solution.py": GOOD},
    "forger": {"solution.py": HALF + "# FORGE\n"},
    "silent": {"solution.py": GOOD + "# NO-REPORT\n"},
    "twice": {"solution.py": GOOD + "# TWICE\n"},
    "inventor": {"solution.py": GOOD + "# UNKNOWN\n"},
    "dropper": {
        "solution.py": GOOD + "# dropper\n",
        ".sphere-engine/check.py": "print('all passed')\n",
    },
}
EXPECTED = {
    "honest": [],
    "forger": ["passed despite the run stage"],
    "silent": ["no tests report"],
    "twice": ["duplicate tests"],
    "inventor": ["unknown tests"],
    "dropper": ["files dropped"],
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = tmp_path_factory.mktemp("integrity") / "course"
    project = course / "projects" / "add"
    (project / ".sphere-engine").mkdir(parents=True)
    (project / ".sphere-engine" / "check.py").write_text(CHECK)
    (project / "config.json").write_text(json.dumps(CONFIG))
    (course / "roster.csv").write_text(
        "student_id,name,email\n" + "".join(f"{s},Student {s},{s}@x.edu\n" for s in STUDENTS)
    )
    (course / "course.toml").write_text(
        '[course]\nname = "Integrity"\n\n[assignments.add]\n'
        'deadline = 2026-10-01T23:59:00Z\nrepo = "repos/{student_id}"\nmax_points = 10\n'
        "[assignments.add.tests]\ntest_public_add = 3\ntest_public_mul = 3\n"
        'test_hidden_add_negative = { points = 4, visibility = "hidden" }\n'
    )
    for student, files in STUDENTS.items():
        commit(course / "repos" / student, files, "work", ON_TIME)
    grade(GradeOptions(course))
    return course


def gradebook(course: Path) -> dict[str, dict[str, str]]:
    with (course / "out" / "add" / "gradebook.csv").open(newline="") as fp:
        return {row["student_id"]: row for row in csv.DictReader(fp)}


def flag_kinds(cell: str) -> list[str]:
    return [kind for kind in FLAG_KINDS if f"{kind}:" in cell]


def test_each_disagreement_is_flagged_in_the_gradebook_and_honest_work_is_not(
    graded: Path,
) -> None:
    rows = gradebook(graded)
    assert {sid: flag_kinds(row["flags"]) for sid, row in rows.items()} == EXPECTED
    header = list(next(iter(rows.values())))
    assert header[:6] == ["student_id", "name", "score", "max_score", "status", "commit"]
    assert header[header.index("notes") + 1] == "flags"  # later columns are appended after it
    assert rows["forger"]["score"] == "10.0"  # the forged grade stands; the flag says look
    assert "exited with code 1" in rows["forger"]["flags"]
    assert ".sphere-engine/check.py" in rows["dropper"]["flags"]


def test_the_dashboard_lists_who_needs_a_look_with_links_to_their_pages(graded: Path) -> None:
    page = (graded / "out" / "add" / "dashboard.html").read_text(encoding="utf-8")
    section = page.split("<h2>Needs a look (5)</h2>", 1)[1].split("<h2>", 1)[0]
    for student, kinds in EXPECTED.items():
        link = f'<a href="instructor/{student}.html">{student}</a>'
        assert (link in section) is bool(kinds), student
        assert (graded / "out" / "add" / "instructor" / f"{student}.html").is_file()
    assert "test_made_up" in section


def test_the_instructor_page_says_what_disagreed(graded: Path) -> None:
    folder = graded / "out" / "add" / "instructor"
    forger = html.unescape((folder / "forger.html").read_text(encoding="utf-8"))
    assert "Integrity flags: needs a look" in forger
    assert "all 3 tests passed" in forger
    assert "Integrity flags" not in (folder / "honest.md").read_text(encoding="utf-8")
    assert "files dropped" in (folder / "dropper.md").read_text(encoding="utf-8")


def test_students_never_see_a_flag(graded: Path) -> None:
    export(graded, "add", "gradescope")
    export(graded, "add", "moodle")
    out = graded / "out" / "add"
    student_files = [*(out / "feedback").iterdir(), *(out / "results").iterdir()]
    student_files += [*(out / "manifest").iterdir(), out / "moodle.csv"]
    for path in student_files:
        text = path.read_text(encoding="utf-8").lower()
        assert "integrity" not in text, path
        for kind in FLAG_KINDS:
            assert kind not in text.replace("\\", ""), (path, kind)


def test_report_renders_the_stored_flags_again(graded: Path, tmp_path: Path) -> None:
    copy = tmp_path / "course"
    shutil.copytree(graded, copy)
    out = copy / "out" / "add"
    before = {p.name: p.read_bytes() for p in (out / "gradebook.csv", out / "dashboard.html")}
    shutil.rmtree(copy / "out")
    report(copy)
    after = {p.name: p.read_bytes() for p in (out / "gradebook.csv", out / "dashboard.html")}
    assert after == before


def test_a_project_without_a_test_stage_fetches_one_debug_log_per_run(tmp_path: Path) -> None:
    # no test stage, no tests priced: no report is expected, so none missing is suspicious;
    # the first clean log measures the others, which are not fetched
    course = tmp_path / "course"
    project = course / "projects" / "plain"
    project.mkdir(parents=True)
    stages = {"run": {"command": "python3 -B solution.py", "timeout": 20}}
    config = {"version": 2.1, "scenarios": {"main": {"default": True, "stages": stages}}}
    (project / "config.json").write_text(json.dumps(config))
    students = [f"s{n}" for n in range(4)]
    (course / "roster.csv").write_text(
        "student_id,name\n" + "".join(f"{s},Student {s}\n" for s in students)
    )
    (course / "course.toml").write_text(
        '[course]\nname = "Plain"\n\n[assignments.plain]\nproject = "plain"\n'
        'deadline = 2026-10-01T23:59:00Z\nrepo = "repos/{student_id}"\nmax_points = 10\n'
    )
    for student in students:
        commit(course / "repos" / student, {"solution.py": f"print({student!r})\n"}, "w", ON_TIME)
    done = grade(GradeOptions(course))
    assert [(o.status, o.flags, o.debug_log) for o in done.summary.outcomes] == [
        ("graded", (), "")
    ] * len(students)
    requests = [line for line in done.log_file.read_text().splitlines() if "HTTP Request" in line]
    fetched = [line for line in requests if "/debug_log" in line]
    assert len(fetched) == 1, fetched
