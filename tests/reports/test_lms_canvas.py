"""Canvas gradebook import file: header, points possible, identities, blanks, hostile text."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.errors import ConfigError, ExportError
from grader.records import StudentOutcome
from grader.reports.lms.canvas import FILE, canvas_csv
from grader.roster import Student

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
Roster = dict[str, Student]  # the sample_roster fixture of conftest.py
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"  # 15 points
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_canvas_file_is_header_points_possible_then_students_in_roster_order(
    roster_outcome: MakeOutcome,
) -> None:
    outcomes = [
        roster_outcome("bchen", failing={HIDDEN_FAIL: "x"}),
        roster_outcome("amartin", outcome="ok"),
    ]
    exported = canvas_csv(outcomes, outcomes[0].assignment)
    assert exported.files[FILE] == (
        b"Student,ID,SIS User ID,SIS Login ID,Section,Homework 1: Text statistics (40101)\r\n"
        b"    Points Possible,,,,,100\r\n"
        b"Bo Chen,5002,20261002,bchen,A,85\r\n"
        b"Alice Martin,5001,20261001,amartin,A,100\r\n"
    )
    assert exported.rows == 2
    assert exported.warnings == ()


def test_canvas_student_not_graded_gets_an_empty_cell_and_a_warning_never_zero(
    roster_outcome: MakeOutcome,
) -> None:
    outcomes = [
        roster_outcome("amartin", "hw2", outcome="ok"),
        roster_outcome("hpatel", "hw2", status="not graded", outcome="infrastructure"),
    ]
    exported = canvas_csv(outcomes, outcomes[0].assignment)
    rows = cells(exported.files[FILE])
    assert rows[0][-1] == "Homework 2: RPN calculator (40102)"
    assert rows[3] == ["Hina Patel", "5008", "20261008", "hpatel", "B", ""]
    (warning,) = exported.warnings
    assert "hpatel" in warning and "empty cell" in warning and "amartin" not in warning


def test_canvas_without_assignment_id_writes_the_bare_title_and_warns(
    roster_outcome: MakeOutcome,
) -> None:
    outcome = roster_outcome("amartin")
    bare = replace(outcome.assignment, lms={})
    exported = canvas_csv([replace(outcome, assignment=bare)], bare)
    assert cells(exported.files[FILE])[0][-1] == "Homework 1: Text statistics"
    (warning,) = exported.warnings
    assert "creates a new assignment" in warning
    assert "assignments.hw1.lms.canvas_assignment_id" in warning


def test_canvas_names_every_student_it_could_not_match_in_one_error(
    make_outcome: MakeOutcome, roster_outcome: MakeOutcome
) -> None:
    unmatched = ("amartin", "erivera")
    outcomes = [
        roster_outcome(sid)
        if sid not in unmatched
        else make_outcome(sid, student=Student(sid, name="No Ids", line=7))
        for sid in ("amartin", "bchen", "erivera")
    ]
    with pytest.raises(ExportError) as caught:
        canvas_csv(outcomes, outcomes[0].assignment)
    message = str(caught.value)
    assert "2 student(s)" in message
    assert "amartin (roster line 7): no canvas_id, sis_user_id or sis_login_id" in message
    assert "erivera (roster line 7)" in message
    assert "bchen" not in message


def test_canvas_matches_on_sis_ids_when_the_canvas_id_is_missing(
    make_outcome: MakeOutcome, sample_roster: Roster
) -> None:
    student = replace(sample_roster["bchen"], canvas_id="", sis_user_id="")
    outcome = make_outcome("bchen", student=student)
    rows = cells(canvas_csv([outcome], outcome.assignment).files[FILE])
    assert rows[2][1:4] == ["", "", "bchen"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("canvas_id", "u5002", "not a Canvas user id"),
        ("sis_login_id", "=HYPERLINK(1)", "runs as a formula"),
        ("sis_user_id", "2026\x1b1002", "control character"),
    ],
)
def test_canvas_refuses_identities_it_would_not_match_or_a_spreadsheet_would_run(
    make_outcome: MakeOutcome, field: str, value: str, problem: str, sample_roster: Roster
) -> None:
    outcome = make_outcome("bchen", student=replace(sample_roster["bchen"], **{field: value}))
    with pytest.raises(ExportError, match=problem):
        canvas_csv([outcome], outcome.assignment)


@pytest.mark.parametrize(
    ("lms", "title", "key"),
    [
        ({"canvas_assignment_id": "hw1"}, "Homework 1", "lms.canvas_assignment_id"),
        ({}, "Lab (3)", "lms.canvas_assignment_id"),
        ({"canvas_assignment_id": "40101"}, "Final Grade project", "title"),
    ],
)
def test_canvas_refuses_a_column_canvas_would_misread(
    lms: dict[str, str], title: str, key: str, roster_outcome: MakeOutcome
) -> None:
    outcome = roster_outcome("bchen")
    assignment = replace(outcome.assignment, title=title, lms=lms)
    with pytest.raises(ConfigError, match=f"assignments.hw1.{key}"):
        canvas_csv([replace(outcome, assignment=assignment)], assignment)


hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30
) | st.sampled_from(["=1+2", "+SUM(A1)", "-2", "@cmd", 'Smith, "Jo"', "a\nb", "\tx", "Ünï ✓"])


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_text, section=hostile_text)
def test_canvas_free_text_never_starts_a_formula_and_every_row_keeps_its_columns(
    make_outcome: MakeOutcome, name: str, section: str, sample_roster: Roster
) -> None:
    student = replace(sample_roster["bchen"], name=name, section=section)
    outcome = make_outcome("bchen", student=student)
    data = canvas_csv([outcome], outcome.assignment).files[FILE]
    rows = cells(data)
    assert [len(row) for row in rows] == [6, 6, 6]
    name_cell, canvas_id, sis_user, sis_login, section_cell, score = rows[2]
    assert not name_cell.startswith(FORMULA_STARTS)
    assert not section_cell.startswith(FORMULA_STARTS)
    assert name_cell in (name or "bchen", "'" + name)
    assert section_cell in (section, "'" + section)
    assert (canvas_id, sis_user, sis_login, score) == ("5002", "20261002", "bchen", "100")
    assert canvas_csv([outcome], outcome.assignment).files[FILE] == data
