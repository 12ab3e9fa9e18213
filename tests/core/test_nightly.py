"""Unattended nightly runs: commit dates, extensions, force-pushes, the first-seen clock,
nothing-changed nights, the course lock, one log per run and `grader status`.

Every test uses real git repositories with dated commits, the real SQLite state and the
in-process local engine. Where a test needs time to pass between two nights (the
first-seen clock) the state's clock is injected; git, the engine and SQLite stay real.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from grader.cli import main
from grader.config import load_course
from grader.connect import choose_engine
from grader.grading import GradeOptions, grade
from grader.lock import course_lock
from grader.outputs import write_assignment_outputs
from grader.pipeline import GradeRequest, Pipeline, RunSummary
from grader.preflight import default_out_root
from grader.roster import load_roster
from grader.state import STATE_FILE, State, open_state
from tests.support.repos import GOOD, HALF, commit, git

DEADLINE = datetime(2026, 10, 1, 23, 59, tzinfo=UTC)  # the tiny course's


def night(course: Path, now: datetime) -> RunSummary:
    """One unattended run, as `grader grade` does it, with the state's clock at ``now``."""
    config = load_course(course)
    roster = load_roster(config.roster)
    engine = choose_engine(config, environ={})
    with (
        course_lock(config.state_dir),
        State(config.state_dir / STATE_FILE, clock=lambda: now) as state,
    ):
        request = GradeRequest(config, roster, tuple(config.assignments))
        summary = asyncio.run(Pipeline(request, state, engine).run())
        for assignment in config.assignments.values():
            write_assignment_outputs(config, assignment, state, roster, default_out_root(config))
    return summary


def gradebook(course: Path) -> dict[str, dict[str, str]]:
    with (course / "out" / "add" / "gradebook.csv").open(newline="") as fp:
        return {row["student_id"]: row for row in csv.DictReader(fp)}


def set_course_option(course: Path, table: str, text: str) -> None:
    """Append ``text`` to the ``[table]`` of course.toml (added at the end)."""
    with (course / "course.toml").open("a") as fp:
        fp.write(f"[{table}]\n{text}\n")


def use_first_seen_clock(course: Path) -> None:
    toml = course / "course.toml"
    toml.write_text(
        toml.read_text().replace("max_points = 10\n", 'max_points = 10\nclock = "first_seen"\n')
    )


def force_push(repo: Path, onto: str, files: dict[str, str], message: str, when: datetime) -> str:
    """Rewrite the branch: move it back to ``onto`` and commit new work there."""
    git(repo, "reset", "-q", "--hard", onto)
    return commit(repo, files, message, when)


def engine_submissions(course: Path) -> int:
    import sqlite3

    db = sqlite3.connect(course / ".grader" / "engine" / "engine.sqlite3")
    try:
        count: int = db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    finally:
        db.close()
    return count


# nights with nothing new, and with one new push -----------------------------------------


def test_night_with_nothing_changed_creates_no_submission_anywhere(tiny_course: Path) -> None:
    repos = tiny_course / "repos"
    commit(repos / "ada", {"solution.py": GOOD}, "solve", DEADLINE - timedelta(days=2))
    commit(repos / "bob", {"solution.py": HALF}, "try", DEADLINE - timedelta(days=1))
    runner = CliRunner()
    first = runner.invoke(main, ["grade", str(tiny_course)])
    assert first.exit_code == 1, first.output  # cy has no repository
    before, engine_before = gradebook(tiny_course), engine_submissions(tiny_course)

    again = runner.invoke(main, ["grade", str(tiny_course)])

    assert again.exit_code == 1, again.output
    assert "submissions created: 0, reused: 2" in again.output
    assert engine_submissions(tiny_course) == engine_before == 2
    assert gradebook(tiny_course) == before
    with open_state(tiny_course / ".grader") as state:
        created = state.db.execute(
            "SELECT COUNT(*) FROM submissions WHERE engine_id IS NOT NULL AND run_id = 2"
        ).fetchone()[0]
    assert created == 0


def test_night_with_nothing_changed_reads_and_packages_no_commit_again(
    tiny_course: Path,
) -> None:
    """Each remote still advertises the tip its history was walked at, and each commit's
    archive hash is known from the night it was packaged: the stored results are reused
    without fetching, walking or reading anything."""
    repos = tiny_course / "repos"
    commit(repos / "ada", {"solution.py": GOOD}, "solve", DEADLINE - timedelta(days=2))
    commit(repos / "bob", {"solution.py": HALF}, "try", DEADLINE - timedelta(days=1))
    first = grade(GradeOptions(tiny_course))
    assert first.summary.archives_built == 2

    config = load_course(tiny_course)
    request = GradeRequest(config, load_roster(config.roster), ("add",))
    with open_state(config.state_dir) as state:
        pipeline = Pipeline(request, state, choose_engine(config, environ={}))
        again = asyncio.run(pipeline.run())

    assert (again.archives_built, again.submissions_created, again.reused) == (0, 0, 2)
    # each remote is asked whether its tip moved; none did: no fetch, log or tree read
    assert pipeline.sources.commands == {"ls-remote": 2}
    assert sorted(archives(again)) == sorted(archives(first.summary))


def test_night_after_the_packing_changed_packages_every_commit_again(tiny_course: Path) -> None:
    repos = tiny_course / "repos"
    commit(repos / "ada", {"solution.py": GOOD, "notes.txt": "x\n"}, "solve", DEADLINE)
    grade(GradeOptions(tiny_course))
    toml = tiny_course / "course.toml"
    toml.write_text(
        toml.read_text().replace("max_points = 10\n", 'max_points = 10\nexclude = ["*.txt"]\n')
    )

    again = grade(GradeOptions(tiny_course))

    assert (again.summary.archives_built, again.summary.submissions_created) == (1, 1)


def test_night_with_nothing_changed_rewrites_no_page(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", DEADLINE)
    grade(GradeOptions(tiny_course))
    out = tiny_course / "out"
    pages = [p for p in out.rglob("*") if p.suffix in (".md", ".html", ".json")]
    assert len(pages) > 6  # feedback, instructor views, manifests, dashboard, course page
    for page in pages:
        os.utime(page, ns=(0, 0))

    grade(GradeOptions(tiny_course))

    assert [p for p in pages if p.stat().st_mtime_ns != 0] == []


def archives(summary: RunSummary) -> list[tuple[str, str | None]]:
    return [(o.student.student_id, o.archive_sha256) for o in summary.outcomes]


def test_changed_instructor_tests_regrade_everyone_once(tiny_course: Path) -> None:
    repos = tiny_course / "repos"
    commit(repos / "ada", {"solution.py": GOOD}, "solve", DEADLINE - timedelta(days=2))
    commit(repos / "bob", {"solution.py": HALF}, "try", DEADLINE - timedelta(days=1))
    grade(GradeOptions(tiny_course))
    tests = tiny_course / "projects" / "add" / ".sphere-engine" / "tests" / "test_add.py"
    tests.write_text(tests.read_text() + "\ndef test_public_zero():\n    assert add(0, 0) == 0\n")

    regraded = grade(GradeOptions(tiny_course))
    unchanged = grade(GradeOptions(tiny_course))

    assert regraded.summary.submissions_created == 2
    assert unchanged.summary.submissions_created == 0
    assert {row["status"] for row in gradebook(tiny_course).values()} == {"graded", "not graded"}


# which commit: extensions, force-pushes, the first-seen clock -----------------------------


def test_extension_grades_the_later_commit_as_on_time(tiny_course: Path) -> None:
    set_course_option(tiny_course, "assignments.add.extensions", 'ada = "48h"')
    after_deadline = DEADLINE + timedelta(hours=30)
    for student in ("ada", "bob"):
        repo = tiny_course / "repos" / student
        commit(repo, {"solution.py": HALF}, "first try", DEADLINE - timedelta(days=1))
        commit(repo, {"solution.py": GOOD + f"# {student}\n"}, "fix mul", after_deadline)

    grade(GradeOptions(tiny_course))

    rows = gradebook(tiny_course)
    assert rows["ada"]["commit"] == git(tiny_course / "repos" / "ada", "rev-parse", "HEAD")
    assert (rows["ada"]["score"], rows["ada"]["late_penalty"]) == ("10.0", "0.0")
    # bob has no extension and no late window: his commit before the deadline counts
    assert rows["bob"]["commit"] == git(tiny_course / "repos" / "bob", "rev-parse", "HEAD~1")
    assert rows["bob"]["score"] == "7.0"
    assert "1 later commit was ignored" in rows["bob"]["commit_reason"]


def test_force_pushed_branch_is_graded_not_the_commit_it_replaced(tiny_course: Path) -> None:
    repo = tiny_course / "repos" / "ada"
    start = commit(repo, {"README.md": "ada\n"}, "start", DEADLINE - timedelta(days=5))
    replaced = commit(repo, {"solution.py": GOOD}, "solve", DEADLINE - timedelta(days=2))
    grade(GradeOptions(tiny_course, students=("ada",)))
    assert gradebook(tiny_course)["ada"]["commit"] == replaced

    rewritten = force_push(repo, start, {"solution.py": HALF}, "redo", DEADLINE - timedelta(days=3))
    again = grade(GradeOptions(tiny_course, students=("ada",)))

    row = gradebook(tiny_course)["ada"]
    assert (row["commit"], row["score"]) == (rewritten, "7.0")
    assert again.summary.submissions_created == 1


def test_first_seen_clock_ignores_backdated_commit_pushed_after_the_deadline(
    tiny_course: Path,
) -> None:
    use_first_seen_clock(tiny_course)
    repo = tiny_course / "repos" / "ada"
    on_time = commit(repo, {"solution.py": HALF}, "try", DEADLINE - timedelta(days=2))
    night(tiny_course, DEADLINE - timedelta(days=1))
    # pushed three days late, dated three hours before the deadline
    commit(repo, {"solution.py": GOOD}, "fix", DEADLINE - timedelta(hours=3))

    summary = night(tiny_course, DEADLINE + timedelta(days=3))

    row = gradebook(tiny_course)["ada"]
    assert (row["commit"], row["score"], row["late_penalty"]) == (on_time, "7.0", "0.0")
    assert "first seen by the grader" in row["commit_reason"]
    assert "1 later commit was ignored" in row["commit_reason"]
    assert summary.submissions_created == 0  # the graded archive is the same as last night


def test_first_seen_clock_grades_the_rewritten_branch_not_a_vanished_commit(
    tiny_course: Path,
) -> None:
    use_first_seen_clock(tiny_course)
    repo = tiny_course / "repos" / "ada"
    start = commit(repo, {"solution.py": HALF}, "start", DEADLINE - timedelta(days=5))
    vanished = commit(repo, {"solution.py": GOOD}, "solve", DEADLINE - timedelta(days=2))
    night(tiny_course, DEADLINE - timedelta(days=1))
    assert gradebook(tiny_course)["ada"]["commit"] == vanished

    # after the deadline the branch is rewritten; the commit seen before is gone from it
    force_push(repo, start, {"solution.py": GOOD + "# v2\n"}, "redo", DEADLINE - timedelta(days=3))
    night(tiny_course, DEADLINE + timedelta(days=1))

    row = gradebook(tiny_course)["ada"]
    assert row["commit"] == start  # the last commit of the branch as it is now, seen in time
    assert row["score"] == "7.0"


def test_first_seen_clock_grades_a_rewrite_pushed_before_the_deadline(tiny_course: Path) -> None:
    use_first_seen_clock(tiny_course)
    repo = tiny_course / "repos" / "ada"
    start = commit(repo, {"README.md": "ada\n"}, "start", DEADLINE - timedelta(days=5))
    commit(repo, {"solution.py": HALF}, "try", DEADLINE - timedelta(days=4))
    night(tiny_course, DEADLINE - timedelta(days=3))

    rewritten = force_push(repo, start, {"solution.py": GOOD}, "redo", DEADLINE - timedelta(days=4))
    night(tiny_course, DEADLINE - timedelta(days=1))

    row = gradebook(tiny_course)["ada"]
    assert (row["commit"], row["score"]) == (rewritten, "10.0")
    assert "first seen by the grader 2026-09-30 23:59 UTC" in row["commit_reason"]


# the lock, the logs, status ----------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from grader.lock import course_lock
with course_lock(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_run_while_another_holds_the_lock_exits_2_naming_the_holder(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", DEADLINE)
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tiny_course / ".grader")],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "holding"
            blocked = subprocess.run(
                [sys.executable, "-m", "grader", "grade", str(tiny_course)],
                capture_output=True,
                text=True,
                timeout=60,
                env={k: v for k, v in os.environ.items() if not k.startswith("SPHERE_ENGINE_")},
            )
        finally:
            holder.kill()
    assert blocked.returncode == 2
    assert f"pid {holder.pid}" in blocked.stderr
    assert str(tiny_course / ".grader" / "lock") in blocked.stderr
    assert "Traceback" not in blocked.stderr
    assert not (tiny_course / "out").exists()  # nothing was run or written


def test_every_run_logs_to_a_file_under_grader_logs(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", DEADLINE)
    first = grade(GradeOptions(tiny_course))
    second = grade(GradeOptions(tiny_course))

    logs = tiny_course / ".grader" / "logs"
    for result in (first, second):
        assert result.log_file.parent == logs
        text = result.log_file.read_text()
        assert f"run {result.summary.run_id} done: " in text
        assert "grading add on engine local" in text
    assert set(logs.iterdir()) == {first.log_file, second.log_file}


def test_status_shows_last_graded_commit_score_state_and_when(tiny_course: Path) -> None:
    repos = tiny_course / "repos"
    commit(repos / "ada", {"solution.py": HALF}, "try", DEADLINE - timedelta(days=3))
    commit(repos / "bob", {"solution.py": HALF + "# bob\n"}, "try", DEADLINE - timedelta(days=3))
    grade(GradeOptions(tiny_course))
    fixed = commit(repos / "ada", {"solution.py": GOOD}, "fix", DEADLINE - timedelta(days=1))
    grade(GradeOptions(tiny_course))
    with (tiny_course / "roster.csv").open("a") as fp:
        fp.write("dee,Dee N,dee@example.edu\n")

    result = CliRunner().invoke(main, ["status", str(tiny_course)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    with open_state(tiny_course / ".grader") as state:
        when = {g.student_id: g.created_at for g in state.latest_grades("add")}
    lines = {line.split()[3]: line for line in result.output.splitlines() if "│ add" in line}
    ada = rf"{fixed[:10]}\s*│\s*10\s*│\s*graded\s*│\s*{when['ada']:%Y-%m-%d %H:%M} UTC\s*│\s*2"
    assert re.search(ada, lines["ada"])
    assert re.search(r"│\s*7\s*│\s*graded\s*│", lines["bob"])
    assert re.search(r"│\s*-\s*│\s*not graded\s*│", lines["cy"])
    assert re.search(r"│\s*-\s*│\s*never graded\s*│\s*│", lines["dee"])
