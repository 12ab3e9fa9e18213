"""Gradebook and history CSVs: column order, empty (never 0) for not graded, stable bytes."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.records import StudentOutcome, TestOutcome
from grader.reports.gradebook import (
    COLUMNS,
    HISTORY_COLUMNS,
    build_gradebook,
    build_history,
    write_gradebook,
    write_history,
)
from grader.state import StoredGrade

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fp:
        return list(csv.DictReader(fp))


def sample_rows(make_outcome: MakeOutcome) -> list[StudentOutcome]:
    return [
        make_outcome("amartin", outcome="ok"),
        make_outcome(
            "bchen",
            failing={
                "test_hidden_word_count_punctuation": "",
                "test_hidden_top_words_ties_alphabetical": "",
                "test_hidden_average_word_length_empty": "",
            },
        ),
        make_outcome("cokafor", "hw2", tests=[], outcome="build error"),
        make_outcome("gmueller", outcome="ok", lateness=timedelta(days=1, hours=6, minutes=1)),
        make_outcome(
            "hpatel",
            "hw2",
            status="not graded",
            outcome="repository unavailable",
            reason="repos/hw2/hpatel.bundle does not exist",
        ),
    ]


def test_gradebook_columns_start_with_the_contract_and_keep_one_order(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    frame = build_gradebook(sample_rows(make_outcome))
    assert list(frame.columns) == list(COLUMNS)
    write_gradebook(frame, tmp_path / "gradebook.csv")
    header = (tmp_path / "gradebook.csv").read_text().split("\n", 1)[0]
    assert header.startswith("student_id,name,score,max_score,status,commit,outcome,reason,")


def test_scores_are_written_as_decimals_and_not_graded_as_empty(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    write_gradebook(build_gradebook(sample_rows(make_outcome)), tmp_path / "g.csv")
    rows = {r["student_id"]: r for r in read_csv(tmp_path / "g.csv")}
    got = {s: (r["score"], r["status"], r["outcome"]) for s, r in rows.items()}
    assert got == {
        "amartin": ("100.0", "graded", "ok"),
        "bchen": ("65.0", "graded", "fail"),
        "cokafor": ("0.0", "graded", "build error"),
        "gmueller": ("80.0", "graded", "ok"),
        "hpatel": ("", "not graded", "repository unavailable"),
    }
    g = rows["gmueller"]
    assert (g["raw_points"], g["late_penalty"], g["late_percent"], g["late_days"]) == (
        "100.0",
        "20.0",
        "20.0",
        "2",
    )
    assert g["lateness_minutes"] == str(30 * 60 + 1) + ".0"
    h = rows["hpatel"]
    assert (h["raw_points"], h["late_penalty"], h["late_days"], h["commit"]) == ("", "", "", "")
    assert h["max_score"] == "100.0"
    assert h["reason"] == "repos/hw2/hpatel.bundle does not exist"
    assert rows["bchen"]["committed_at"] == "2026-09-18T23:05:00Z"
    assert len(rows["bchen"]["commit"]) == 40


def test_rows_keep_the_given_order(make_outcome: MakeOutcome) -> None:
    outcomes = [make_outcome(s) for s in ("zoe", "adam", "mia")]
    assert list(build_gradebook(outcomes)["student_id"]) == ["zoe", "adam", "mia"]


def test_gradebook_bytes_are_the_same_every_time(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    write_gradebook(build_gradebook(sample_rows(make_outcome)), tmp_path / "a.csv")
    write_gradebook(build_gradebook(sample_rows(make_outcome)), tmp_path / "b.csv")
    data = (tmp_path / "a.csv").read_bytes()
    assert data == (tmp_path / "b.csv").read_bytes()
    assert b"\r" not in data


def test_a_gradebook_where_nobody_was_graded_still_has_every_column(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    nobody = [make_outcome(s, status="not graded", outcome="not graded yet") for s in "ab"]
    write_gradebook(build_gradebook(nobody), tmp_path / "g.csv")
    rows = read_csv(tmp_path / "g.csv")
    assert [r["score"] for r in rows] == ["", ""]
    assert list(rows[0]) == list(COLUMNS)
    empty = build_gradebook([])
    assert list(empty.columns) == list(COLUMNS)


def test_formula_like_student_text_cannot_run_in_a_spreadsheet(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome(commit_reason='=HYPERLINK("http://evil","x")', reason="+1 bonus")
    write_gradebook(build_gradebook([outcome]), tmp_path / "g.csv")
    row = read_csv(tmp_path / "g.csv")[0]
    assert row["commit_reason"] == '\'=HYPERLINK("http://evil","x")'
    assert row["reason"] == "'+1 bonus"


def test_instructor_warnings_land_in_the_notes_column(
    make_outcome: MakeOutcome,
) -> None:
    outcome = make_outcome(tests=[TestOutcome("test_unknown")])
    notes = build_gradebook([outcome])["notes"].iloc[0]
    assert "match no rule" in notes


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(
    graded=st.lists(st.booleans(), min_size=1, max_size=6),
    late_minutes=st.integers(0, 60 * 24 * 4),
)
def test_score_cell_is_empty_exactly_when_not_graded(
    make_outcome: MakeOutcome, tmp_path: Path, graded: list[bool], late_minutes: int
) -> None:
    outcomes = [
        make_outcome(f"s{i}", lateness=timedelta(minutes=late_minutes))
        if g
        else make_outcome(f"s{i}", status="not graded", outcome="infrastructure")
        for i, g in enumerate(graded)
    ]
    path = tmp_path / "g.csv"
    write_gradebook(build_gradebook(outcomes), path)
    for outcome, row in zip(outcomes, read_csv(path), strict=True):
        if outcome.grade is None:
            assert row["score"] == ""
        else:
            assert float(row["score"]) == outcome.grade.score
            assert "." in row["score"]


def test_history_has_every_run_per_student_in_order(tmp_path: Path) -> None:
    at = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
    grades = [
        StoredGrade(1, "hw1", "ada", "graded", 70.0, "{}", at),
        StoredGrade(1, "hw1", "bob", "not graded", None, "{}", at),
        StoredGrade(2, "hw1", "ada", "graded", 95.5, "{}", at + timedelta(days=1)),
        StoredGrade(2, "hw1", "bob", "graded", 0.0, "{}", at + timedelta(days=1)),
    ]
    frame = build_history(grades)
    assert list(frame.columns) == list(HISTORY_COLUMNS)
    write_history(frame, tmp_path / "history.csv")
    assert (tmp_path / "history.csv").read_text() == (
        "assignment,run_id,graded_at,student_id,status,score,event,previous_score,reason\n"
        "hw1,1,2026-10-01T02:00:00Z,ada,graded,70.0,graded,,\n"
        "hw1,1,2026-10-01T02:00:00Z,bob,not graded,,graded,,\n"
        "hw1,2,2026-10-02T02:00:00Z,ada,graded,95.5,graded,,\n"
        "hw1,2,2026-10-02T02:00:00Z,bob,graded,0.0,graded,,\n"
    )
