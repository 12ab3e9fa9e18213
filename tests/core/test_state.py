"""SQLite state: migrations, first-seen clock, submission bookkeeping, grade history."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.errors import CourseLockedError, StateError
from grader.lock import course_lock
from grader.state import SCHEMA_VERSION, State, StoredResult


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_new_state_is_at_current_schema_and_reopens(tmp_path: Path) -> None:
    with State(tmp_path / "s.db") as state:
        assert state.schema_version == SCHEMA_VERSION
    with State(tmp_path / "s.db") as state:
        assert state.schema_version == SCHEMA_VERSION


def test_state_from_newer_grader_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="newer grader"):
        State(tmp_path / "s.db")


def test_corrupt_state_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "s.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match=r"s\.db"):
        State(tmp_path / "s.db")


def test_first_seen_is_kept_from_the_first_fetch(tmp_path: Path) -> None:
    clock = Clock()
    with State(tmp_path / "s.db", clock=clock) as state:
        committed = datetime(2026, 9, 1, tzinfo=UTC)
        first = state.record_commits("repo", [("a" * 40, committed)])
        clock.now += timedelta(days=1)
        second = state.record_commits("repo", [("a" * 40, committed), ("b" * 40, committed)])
    assert second["a" * 40] == first["a" * 40] == datetime(2026, 10, 1, 12, tzinfo=UTC)
    assert second["b" * 40] == datetime(2026, 10, 2, 12, tzinfo=UTC)


def begin(state: State, run_id: int, key: str = "k", attempt: int = 1) -> int:
    return state.begin_submission(
        run_id,
        "hw1",
        "ada",
        engine="local",
        submission_key=key,
        archive_sha256="sha",
        project="hw1",
        scenario=None,
        attempt=attempt,
    )


def test_only_created_or_final_submissions_are_reused(tmp_path: Path) -> None:
    with State(tmp_path / "s.db") as state:
        run = state.start_run(engine="local", assignments=["hw1"])
        crashed = begin(state, run)  # killed before the engine answered: no id
        assert state.reusable_submission("local", "k") is None
        failed = begin(state, run, attempt=2)
        state.submission_created(failed, 7)
        state.submission_failed(failed, "infra", "status 20")
        assert state.reusable_submission("local", "k") is None
        good = begin(state, run, attempt=3)
        state.submission_created(good, 8)
        row = state.reusable_submission("local", "k")
        assert row is not None and row.engine_id == 8 and row.state == "created"
        result = StoredResult("{}", "[]", "", "")
        state.submission_final(good, status_code=15, status_name="ok", result=result)
        row = state.reusable_submission("local", "k")
        assert row is not None and row.state == "final"
        assert state.result_for(good) == result
        assert state.reusable_submission("remote", "k") is None
        assert crashed != good


def test_every_run_keeps_its_grades_and_latest_wins(tmp_path: Path) -> None:
    clock = Clock()
    with State(tmp_path / "s.db", clock=clock) as state:
        first = state.start_run(engine="local", assignments=["hw1"])
        state.record_grade(first, "hw1", "ada", status="graded", score=50.0, outcome_json="{1}")
        state.record_grade(first, "hw1", "bo", status="not graded", score=None, outcome_json="{2}")
        clock.now += timedelta(hours=1)
        second = state.start_run(engine="local", assignments=["hw1"])
        state.record_grade(second, "hw1", "ada", status="graded", score=90.0, outcome_json="{3}")
        latest = state.latest_grades("hw1")
        history = state.grade_history("hw1")
    assert [(g.student_id, g.score) for g in latest] == [("ada", 90.0), ("bo", None)]
    assert [g.score for g in history] == [50.0, None, 90.0]


def test_second_lock_holder_is_refused_with_holder_named(tmp_path: Path) -> None:
    script = (
        "import sys,time; from pathlib import Path; from grader.lock import course_lock\n"
        "with course_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CourseLockedError, match=f"pid {holder.pid}"), course_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.communicate()
    with course_lock(tmp_path):  # a killed holder releases the lock
        pass
