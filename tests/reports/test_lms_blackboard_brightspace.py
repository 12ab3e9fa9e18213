"""Blackboard Grade Center upload and Brightspace grades import files."""

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
from grader.reports.lms.blackboard import COMMA_FILE, TAB_FILE, blackboard_csv
from grader.reports.lms.brightspace import FILE as BRIGHTSPACE_FILE
from grader.reports.lms.brightspace import brightspace_csv
from grader.roster import Student

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
Roster = dict[str, Student]  # the sample_roster fixture of conftest.py
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"  # 15 points
BLACKBOARD = {"blackboard_column_id": "1234567", "brightspace_item": "HW1, text stats"}


def cells(data: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))


def two_students(roster_outcome: MakeOutcome) -> list[StudentOutcome]:
    outcomes = [
        roster_outcome("bchen", failing={HIDDEN_FAIL: "x"}),
        roster_outcome("hpatel", status="not graded", outcome="infrastructure"),
    ]
    assignment = replace(outcomes[0].assignment, lms=BLACKBOARD)
    return [replace(o, assignment=assignment) for o in outcomes]


def test_blackboard_quotes_every_field_and_names_the_column_by_its_id(
    roster_outcome: MakeOutcome,
) -> None:
    outcomes = two_students(roster_outcome)
    exported = blackboard_csv(outcomes, outcomes[0].assignment)
    assert exported.files[COMMA_FILE] == (
        b'"Username","Homework 1: Text statistics [Total Pts: 100 Score] |1234567"\r\n'
        b'"bchen","85"\r\n'
        b'"hpatel",""\r\n'
    )
    assert (exported.rows, exported.warnings) == (2, ())


def test_blackboard_tab_delimited_file_needs_no_quotes(roster_outcome: MakeOutcome) -> None:
    outcomes = two_students(roster_outcome)
    exported = blackboard_csv(outcomes, outcomes[0].assignment, tabs=True)
    assert exported.files[TAB_FILE] == (
        b"Username\tHomework 1: Text statistics [Total Pts: 100 Score] |1234567\r\n"
        b"bchen\t85\r\n"
        b"hpatel\t\r\n"
    )


def test_blackboard_without_a_column_id_uses_the_bare_title_and_warns(
    roster_outcome: MakeOutcome,
) -> None:
    outcome = roster_outcome("bchen")
    exported = blackboard_csv([outcome], outcome.assignment)
    assert cells(exported.files[COMMA_FILE])[0] == ["Username", "Homework 1: Text statistics"]
    (warning,) = exported.warnings
    assert "new text column" in warning and "blackboard_column_id" in warning


def test_blackboard_username_is_the_sis_login_else_the_student_id(
    make_outcome: MakeOutcome, sample_roster: Roster
) -> None:
    outcomes = [
        make_outcome("bchen", student=replace(sample_roster["bchen"], sis_login_id="b.chen")),
        make_outcome("dnovak", student=replace(sample_roster["dnovak"], sis_login_id="")),
    ]
    rows = cells(blackboard_csv(outcomes, outcomes[0].assignment).files[COMMA_FILE])
    assert [row[0] for row in rows[1:]] == ["b.chen", "dnovak"]


@pytest.mark.parametrize(("lms", "title"), [({"blackboard_column_id": "_12_1"}, "HW"), ({}, "A|B")])
def test_blackboard_refuses_a_column_it_would_misread(
    lms: dict[str, str], title: str, roster_outcome: MakeOutcome
) -> None:
    outcome = roster_outcome("bchen")
    assignment = replace(outcome.assignment, lms=lms, title=title)
    with pytest.raises(ConfigError, match=r"assignments\.hw1\."):
        blackboard_csv([outcome], assignment)


def test_blackboard_names_every_username_a_spreadsheet_would_run(
    make_outcome: MakeOutcome, sample_roster: Roster
) -> None:
    outcomes = [
        make_outcome(sid, student=replace(sample_roster[sid], sis_login_id=login))
        for sid, login in (("amartin", "=cmd|' /C calc'!A0"), ("bchen", "+1"), ("fsato", "ok"))
    ]
    with pytest.raises(ExportError) as caught:
        blackboard_csv(outcomes, outcomes[0].assignment)
    message = str(caught.value)
    assert "amartin (roster line 2): sis_login_id" in message
    assert "bchen (roster line 3): sis_login_id '+1' starts with '+'" in message
    assert "fsato" not in message


def test_brightspace_marks_identities_and_every_row_end_with_a_hash(
    roster_outcome: MakeOutcome,
) -> None:
    outcomes = two_students(roster_outcome)
    exported = brightspace_csv(outcomes, outcomes[0].assignment)
    assert exported.files[BRIGHTSPACE_FILE] == (
        b'OrgDefinedId,Username,"HW1, text stats Points Grade",End-of-Line Indicator\r\n'
        b"#20261002,#bchen,85,#\r\n"
        b"#20261008,#hpatel,,#\r\n"
    )
    assert (exported.rows, exported.warnings) == (2, ())


def test_brightspace_without_an_item_name_uses_the_title_and_warns(
    roster_outcome: MakeOutcome,
) -> None:
    outcome = roster_outcome("bchen")
    exported = brightspace_csv([outcome], outcome.assignment)
    header = cells(exported.files[BRIGHTSPACE_FILE])[0]
    assert header[2] == "Homework 1: Text statistics Points Grade"
    (warning,) = exported.warnings
    assert "brightspace_item" in warning


def test_brightspace_needs_one_of_org_defined_id_or_username(
    make_outcome: MakeOutcome, sample_roster: Roster
) -> None:
    only_login = make_outcome("amartin", student=replace(sample_roster["amartin"], sis_user_id=""))
    neither = [make_outcome(sid, student=Student(sid, line=n)) for sid, n in (("x1", 4), ("x2", 9))]
    rows = cells(brightspace_csv([only_login], only_login.assignment).files[BRIGHTSPACE_FILE])
    assert rows[1] == ["", "#amartin", "100", "#"]
    with pytest.raises(ExportError) as caught:
        brightspace_csv([only_login, *neither], only_login.assignment)
    message = str(caught.value)
    assert "x1 (roster line 4): no sis_user_id (OrgDefinedId) or sis_login_id" in message
    assert "x2 (roster line 9)" in message


identity = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cf", "Co", "Cn")),
    min_size=1,
    max_size=20,
).filter(lambda s: s == s.strip() and not s.startswith(("=", "+", "-", "@")))


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(login=identity, org_id=identity, tabs=st.booleans())
def test_any_printable_identity_comes_back_unchanged(
    make_outcome: MakeOutcome, login: str, org_id: str, tabs: bool, sample_roster: Roster
) -> None:
    student = replace(sample_roster["bchen"], sis_login_id=login, sis_user_id=org_id)
    outcome = make_outcome("bchen", student=student)
    board = blackboard_csv([outcome], outcome.assignment, tabs=tabs).files
    delimiter = "\t" if tabs else ","
    (data,) = board.values()
    assert cells(data, delimiter)[1] == [login, "100"]
    bright = cells(brightspace_csv([outcome], outcome.assignment).files[BRIGHTSPACE_FILE])
    assert bright[1] == ["#" + org_id, "#" + login, "100", "#"]
