"""The integrity suite: cheating students graded by the real grader, on both sandbox kinds.

A course with the sample course's real projects and the students of ``cheats.py`` (each
one honest code plus one attack, and the two honest students they are measured against)
is graded once per sandbox kind by ``grader grade`` with its in-process engine, then
exported to every LMS format. The tests then read what came out:

* every cheater's score equals their honest code's (never more, whatever the trick);
* every attack ran: it left its evidence in the cheater's own feedback (what it tried and
  what happened), or in the engine's debug log;
* code that only runs if the grader loaded a student's file never ran (its marker is
  nowhere in the engine's stage outputs, logs or reports, nor in any output file);
* no hidden test name and no line of a hidden test file is in anything a student reads
  (feedback .md and .html, manifests, LMS files, Gradescope results);
* nothing any student started is still running.

Attacks on the tests' process or configuration are decided before any student code runs
(the harness's pytest never loads them), so they are graded on the first sandbox kind
only; attacks on files, paths and processes, which the sandbox decides, on every kind.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cheats import CHEATS, HONEST, SAMPLE, STARTER, STUDENTS, Cheat, Files, Link, repository
from click.testing import CliRunner

import grader.engine.runner
from grader.cli import main
from grader.engine.sandbox import KINDS, SandboxInfo, leftover_processes, probe_sandbox
from tests.support.leaks import Secrets, student_files
from tests.support.repos import git

pytestmark = [pytest.mark.sandbox]

NAMESPACED = [k for k in KINDS if k != "rlimits" and probe_sandbox(k) is None]
FIRST = NAMESPACED[:1]
# decided by the sandbox (mounts, pid namespace, uid): graded on every kind
SANDBOXED = {
    "kill-everything",
    "forge-at-import",
    "forge-at-exit",
    "forge-daemon",
    "tampered-tests",
    "site-files",
    "read-by-path",
    "read-through-proc",
    "c-forge-daemon",
    "c-print-hidden",
    "c-include",
    "c-incbin",
    "c-tamper",
}
ASSIGNMENTS = ("hw1", "hw2")
COMMITTED = {
    "hw1": datetime(2026, 9, 18, 16, 0, tzinfo=UTC),
    "hw2": datetime(2026, 10, 2, 16, 0, tzinfo=UTC),
}
LMS = ("canvas", "moodle", "blackboard", "brightspace", "gradescope")

needs_sandbox = pytest.mark.skipif(
    not NAMESPACED, reason="needs root and a namespace sandbox (bubblewrap or unshare), as CI has"
)
pytestmark.append(needs_sandbox)


def graded_on(kind: str) -> tuple[Cheat, ...]:
    """The students graded on ``kind``: all on the first kind, the sandbox's cases on others."""
    if kind in FIRST:
        return STUDENTS
    return tuple(s for s in STUDENTS if s in (HONEST, STARTER) or s.student in SANDBOXED)


def attacked(cheat: Cheat) -> tuple[str, ...]:
    """The assignments where ``cheat`` attacks (the other one is the starter code)."""
    return tuple(a for a in ASSIGNMENTS if getattr(cheat, a))


@dataclass(frozen=True)
class Graded:
    """One graded course: what the grader printed and wrote, and the engine's streams."""

    kind: str
    course: Path
    output: str
    exit_code: int
    rows: dict[tuple[str, str], dict[str, str]]  # (assignment, student) -> gradebook row

    def out(self, assignment: str) -> Path:
        return self.course / "out" / assignment

    def feedback(self, assignment: str, student: str) -> str:
        return (self.out(assignment) / "feedback" / f"{student}.md").read_text()

    def streams(self, assignment: str, student: str) -> dict[str, str]:
        """The engine's streams of the student's submission (not its uploaded source)."""
        page = (self.out(assignment) / "instructor" / f"{student}.md").read_text()
        found = re.search(r"- Submission: (\d+);", page)
        assert found, page
        folder = self.course / ".grader" / "engine" / "submissions" / found[1] / "streams"
        return {
            p.name: p.read_text(errors="replace") for p in folder.iterdir() if p.name != "source"
        }

    def engine_texts(self) -> Iterator[tuple[Path, str]]:
        for path in sorted(
            (self.course / ".grader" / "engine" / "submissions").glob("*/streams/*")
        ):
            if path.name != "source":
                yield path, path.read_text(errors="replace")


def write_repo(folder: Path, files: Files, when: datetime) -> None:
    folder.mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, Link):
            path.symlink_to(str(text))
        else:
            path.write_text(text)
    git(folder, "add", "-A")
    stamp = when.isoformat()
    git(
        folder,
        "commit",
        "-q",
        "-m",
        "my work",
        env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
    )


def make_course(root: Path, students: tuple[Cheat, ...]) -> Path:
    """The sample course's projects, tests, rules and deadlines, with these students."""
    course = root / "course"
    shutil.copytree(SAMPLE / "projects", course / "projects")
    toml = (SAMPLE / "course.toml").read_text()
    toml = re.sub(r"\n\[assignments\.hw\d\.extensions\]\n[^\[]*", "\n", toml)
    toml = toml.replace("{student_id}.bundle", "{student_id}")
    (course / "course.toml").write_text(toml)
    with (course / "roster.csv").open("w", newline="") as fp:
        out = csv.writer(fp)
        out.writerow(["student_id", "name", "email", "github_username", "section",
                      "sis_user_id", "sis_login_id", "canvas_id"])  # fmt: skip
        for number, student in enumerate(students, 1):
            sid = student.student
            out.writerow([sid, sid.replace("-", " ").title(), f"{sid}@students.example.edu",
                          sid, "A", f"2026{number:04}", sid, f"{9000 + number}"])  # fmt: skip
    for student in students:
        for assignment in ASSIGNMENTS:
            files = repository(student, assignment)
            write_repo(
                course / "repos" / assignment / student.student, files, COMMITTED[assignment]
            )
    return course


_GRADED: dict[str, Graded] = {}  # per kind: pytest keys a parametrized fixture by case


@pytest.fixture(scope="module")
def graded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Graded:
    kind: str = request.param
    if kind not in _GRADED:
        _GRADED[kind] = grade(kind, tmp_path_factory)
    return _GRADED[kind]


def grade(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Graded:
    course = make_course(tmp_path_factory.mktemp(f"integrity-{kind}"), graded_on(kind))
    info = SandboxInfo(kind, f"{kind} (integrity suite)")  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grader.engine.runner, "detect_sandbox", lambda: info)
        result = CliRunner().invoke(main, ["grade", str(course)])
    for assignment in ASSIGNMENTS:
        for lms in LMS:
            done = CliRunner().invoke(main, ["export", str(course), "-a", assignment, "--lms", lms])
            assert done.exit_code == 0, done.output
    rows = {}
    for assignment in ASSIGNMENTS:
        with (course / "out" / assignment / "gradebook.csv").open(newline="") as fp:
            for row in csv.DictReader(fp):
                rows[assignment, row["student_id"]] = row
    return Graded(kind, course, result.output, result.exit_code, rows)


def cases() -> list[object]:
    return [
        pytest.param(kind, cheat, assignment, id=f"{kind}-{cheat.student}-{assignment}")
        for kind in NAMESPACED
        for cheat in CHEATS
        if cheat in graded_on(kind)
        for assignment in attacked(cheat)
    ]


def kinds() -> list[object]:
    return [pytest.param(kind, id=kind) for kind in NAMESPACED]


@pytest.mark.parametrize(("graded", "cheat", "assignment"), cases(), indirect=["graded"])
def test_a_cheater_gets_what_the_honest_code_gets(
    graded: Graded, cheat: Cheat, assignment: str
) -> None:
    row = graded.rows[assignment, cheat.student]
    honest = graded.rows[assignment, cheat.honest]
    assert row["status"] == "graded", graded.output
    assert (row["score"], row["outcome"]) == (honest["score"], honest["outcome"]) or (
        row["outcome"] == "build error" and float(row["score"]) <= float(honest["score"])
    ), graded.feedback(assignment, cheat.student)


@pytest.mark.parametrize(("graded", "cheat", "assignment"), cases(), indirect=["graded"])
def test_the_attack_ran_and_left_its_evidence(
    graded: Graded, cheat: Cheat, assignment: str
) -> None:
    feedback = graded.feedback(assignment, cheat.student)
    missing = [e for e in cheat.evidence.get(assignment, ()) if not re.search(e, feedback)]
    assert not missing, feedback
    debug = graded.streams(assignment, cheat.student).get("debug_log", "")
    missing = [e for e in cheat.engine_evidence.get(assignment, ()) if not re.search(e, debug)]
    assert not missing, debug
    assert cheat.evidence.get(assignment) or cheat.engine_evidence.get(assignment)


@pytest.mark.parametrize("graded", kinds(), indirect=True)
def test_no_student_file_ran_where_the_grade_is_written(graded: Graded) -> None:
    assert graded.exit_code == 0, graded.output
    texts = [*graded.engine_texts()]
    texts += [
        (p, p.read_text(errors="replace"))
        for p in (graded.course / "out").rglob("*")
        if p.is_file()
    ]
    assert len(texts) > 100
    fired = [(path, line) for path, text in texts for line in text.splitlines() if "FIRED-" in line]
    assert not fired


@pytest.mark.parametrize("graded", kinds(), indirect=True)
def test_nothing_hidden_reaches_a_student(graded: Graded) -> None:
    for assignment in ASSIGNMENTS:
        secrets = Secrets.of(graded.course / "projects" / assignment)
        files = list(student_files(graded.out(assignment)))
        assert {p.suffix for p in files} >= {".md", ".html", ".csv", ".json"}
        for path in files:
            assert not secrets.found_in(path.read_text(errors="replace")), path


@pytest.mark.parametrize("graded", kinds(), indirect=True)
def test_nothing_a_student_started_outlives_the_run(graded: Graded) -> None:
    assert not leftover_processes(), graded.output
