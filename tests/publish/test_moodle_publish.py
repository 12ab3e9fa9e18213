"""`grader publish --to moodle` against a Moodle on loopback (tests/support/fake_moodle.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.errors import ConfigError
from grader.publish.results import PublishReport
from tests.support.fake_moodle import ASSIGNMENT, TOKEN, FakeMoodle
from tests.support.publish_kit import (
    HIDDEN_MESSAGE,
    HIDDEN_NAME,
    MOODLE_ID,
    SCORES,
    Waits,
    make_course,
    results,
    run_publish,
    store_grades,
)


@pytest.fixture
def course(tmp_path: Path, moodle: FakeMoodle) -> Path:
    course = make_course(
        tmp_path, "https://canvas.invalid", extra=f'[lms.moodle]\nurl = "{moodle.url}"\n\n'
    )
    toml = course / "course.toml"
    toml.write_text(toml.read_text() + f'moodle_assignment_id = "{ASSIGNMENT}"\n')
    store_grades(course, SCORES)
    return course


def run(course: Path, waits: Waits | None = None, **options: object) -> PublishReport:
    return run_publish(course, "moodle", {"MOODLE_TOKEN": TOKEN}, waits, **options)


def test_grades_and_feedback_go_out_in_one_save(course: Path, moodle: FakeMoodle) -> None:
    report = run(course)

    assert results(report) == {
        "ada": "sent",
        "bob": "sent",
        "cyd": "sent",
        "dee": "not graded",
        "eve": "unknown",
        "fay": "sent",
    }
    assert report.exit_code == 1
    assert moodle.count("mod_assign_save_grades") == 1
    assert {s: moodle.grades[uid].grade for s, uid in MOODLE_ID.items()} == {
        "ada": "10",
        "bob": "7",
        "cyd": "4",
        "fay": "6",
    }
    assert "204" not in moodle.grades  # not graded: nothing, never a zero
    feedback = moodle.grades["202"].feedback
    assert "Score: 7 / 10" in feedback
    assert HIDDEN_NAME not in feedback
    assert HIDDEN_MESSAGE not in feedback
    assert moodle.tokens == {TOKEN}


def test_nothing_changed_sends_nothing_and_a_change_says_what_changed(
    course: Path, moodle: FakeMoodle
) -> None:
    run(course)
    again = run(course)
    assert moodle.count("mod_assign_save_grades") == 1
    assert {results(again)[s] for s in MOODLE_ID} == {"unchanged"}

    store_grades(course, {"bob": 9})
    changed = run(course)

    assert results(changed)["bob"] == "sent"
    bob = moodle.grades["202"]
    assert bob.grade == "9"
    assert bob.feedback.startswith("Your grade for Homework 1 changed from 7 to 9 (out of 10).")
    assert len(bob.history) == 2
    assert len(moodle.grades["201"].history) == 1


def test_a_refused_batch_is_sent_one_student_at_a_time(course: Path, moodle: FakeMoodle) -> None:
    moodle.refuse_user("203")

    report = run(course)

    assert results(report)["cyd"] == "failed"
    assert "Invalid parameter" in next(ln.detail for ln in report.lines if ln.student_id == "cyd")
    assert {results(report)[s] for s in ("ada", "bob", "fay")} == {"sent"}
    assert all(len(moodle.grades[MOODLE_ID[s]].history) == 1 for s in ("ada", "bob", "fay"))


def test_unavailable_moodle_is_retried(course: Path, moodle: FakeMoodle) -> None:
    moodle.fail_next(3)
    waits = Waits()
    report = run(course, waits)
    assert results(report)["ada"] == "sent"
    assert len(waits.seconds) >= 3


def test_dry_run_shows_moodles_values_and_saves_nothing(course: Path, moodle: FakeMoodle) -> None:
    run(course)
    store_grades(course, {"bob": 9})
    dry = run(course, dry_run=True)
    bob = next(line for line in dry.lines if line.student_id == "bob")
    assert (bob.old, bob.new, bob.result) == ("7", "9", "would send")
    assert moodle.count("mod_assign_save_grades") == 1


def test_dry_run_counts_the_sends_a_killed_run_left_and_records_nothing(
    course: Path, moodle: FakeMoodle
) -> None:
    run(course)
    db_path = course / ".grader" / "state.sqlite3"
    with sqlite3.connect(db_path) as db:  # killed before Moodle's answer reached the ledger
        db.execute("UPDATE publications SET state = 'sending', sent_at = NULL")
        left = db.execute("SELECT * FROM publications ORDER BY id").fetchall()

    dry = run(course, dry_run=True)

    assert dry.settled == 4
    assert {results(dry)[s] for s in MOODLE_ID} == {"would send"}  # a save overwrites
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT * FROM publications ORDER BY id").fetchall() == left
    assert moodle.count("mod_assign_save_grades") == 1
    again = run(course)
    assert (again.settled, {results(again)[s] for s in MOODLE_ID}) == (4, {"sent"})
    assert all(len(moodle.grades[uid].history) == 2 for uid in MOODLE_ID.values())


def test_refused_token_exits_3_with_one_line(course: Path, moodle: FakeMoodle) -> None:
    result = CliRunner().invoke(
        main,
        ["publish", str(course), "-a", "hw1", "--to", "moodle"],
        env={"MOODLE_TOKEN": "not-the-token-5150"},
    )
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        "error: Moodle refused the web service token (invalidtoken)"
    ]
    assert "not-the-token-5150" not in result.output


def test_students_are_found_by_idnumber_when_the_assignment_says_so(
    course: Path, moodle: FakeMoodle
) -> None:
    toml = course / "course.toml"
    toml.write_text(toml.read_text() + 'moodle_identity = "idnumber"\n')

    report = run(course)

    assert results(report)["bob"] == "sent"  # sis_user_id SIS-102 is Moodle's idnumber
    ada = next(line for line in report.lines if line.student_id == "ada")
    assert (ada.result, ada.detail) == ("unknown", "no sis_user_id in the roster")
    assert set(moodle.grades) == {MOODLE_ID["bob"]}


def test_the_cli_prints_the_dry_run_table_of_old_and_new_values(
    course: Path, moodle: FakeMoodle
) -> None:
    run(course)
    store_grades(course, {"bob": 9})

    result = CliRunner().invoke(
        main,
        ["publish", str(course), "-a", "hw1", "--to", "moodle", "--dry-run"],
        env={"MOODLE_TOKEN": TOKEN, "COLUMNS": "200"},
    )

    assert result.exit_code == 1, result.output  # eve is unknown to Moodle
    assert "dry run: nothing sent" in result.output
    bob = next(row for row in result.output.splitlines() if " bob " in row)
    cells = [cell.strip() for cell in bob.split("│")[1:6]]
    assert cells == ["bob", "Student bob", "7", "9", "would send"]  # student, name, old, new
    assert moodle.count("mod_assign_save_grades") == 1


def test_feedback_only_is_refused_for_moodle(course: Path) -> None:
    with pytest.raises(ConfigError, match="feedback-only"):
        run(course, feedback_only=True)
