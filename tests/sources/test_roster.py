"""Roster files: the three formats as downloaded, row problems, whole-file errors, repo_for."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.errors import RosterError, SourceError
from grader.roster import Student, id_problem, is_remote, load_roster, read_roster, repo_for

SAMPLE_ROSTER = Path(__file__).resolve().parents[2] / "sample_course" / "roster.csv"


def parse(text: str) -> list[Student]:
    return read_roster(io.StringIO(text, newline=""), source="roster.csv")


def test_sample_course_roster_gives_nineteen_students_with_native_columns() -> None:
    students = load_roster(SAMPLE_ROSTER)
    assert [s.student_id for s in students][:2] == ["amartin", "bchen"]
    assert len(students) == 19
    alice = students[0]
    assert (alice.name, alice.email, alice.github_username) == (
        "Alice Martin",
        "amartin@students.example.edu",
        "alice-martin",
    )
    assert (alice.section, alice.sis_user_id, alice.sis_login_id, alice.canvas_id) == (
        "A",
        "20261001",
        "amartin",
        "5001",
    )
    assert alice.line == 2
    assert all(s.problem is None for s in students)


def test_github_classroom_export_with_bom_quotes_and_blank_lines_is_read(tmp_path: Path) -> None:
    path = tmp_path / "classroom_roster.csv"
    path.write_bytes(
        b'\xef\xbb\xbf"identifier","github_username","github_id","name"\r\n'
        b'"ada@uni.edu","ada-l","1234","Lovelace, Ada"\r\n'
        b"\r\n"
        b'"Bob Kahn","","",""\r\n'
    )
    ada, bob = load_roster(path)
    assert (ada.student_id, ada.github_username, ada.name) == (
        "ada@uni.edu",
        "ada-l",
        "Lovelace, Ada",
    )
    assert ada.columns["github_id"] == "1234"
    assert ada.columns["student_id"] == "ada@uni.edu"  # templates can use native names
    assert (bob.student_id, bob.github_username, bob.line) == ("Bob Kahn", "", 4)
    assert bob.problem is None


@pytest.mark.parametrize(
    "header",
    [
        "username,first_name,last_name,email,section",
        "username,first_name,last_name,email,section,github_id",
        "username,first_name,last_name,email,section,github_id,role",
    ],
)
def test_classroom50_roster_uses_username_as_id_and_github_login(header: str) -> None:
    extra = ",,"[: header.count(",") - 4]
    [grace] = parse(f"{header}\ngrace,Grace,Hopper,grace@uni.edu,P2{extra}\n")
    assert (grace.student_id, grace.github_username, grace.name) == (
        "grace",
        "grace",
        "Grace Hopper",
    )
    assert (grace.email, grace.section, grace.problem) == ("grace@uni.edu", "P2", None)


def test_stray_whitespace_in_header_and_cells_is_ignored() -> None:
    [ada] = parse(" Student_ID , name ,email\n  ada ,  Ada L  , ada@x.edu \n")
    assert (ada.student_id, ada.name, ada.email) == ("ada", "Ada L", "ada@x.edu")


def test_quoted_field_with_newline_keeps_line_numbers_of_later_rows() -> None:
    students = parse('student_id,name\nada,"Ada\nLovelace"\nbob,Bob\n')
    assert [(s.student_id, s.line) for s in students] == [("ada", 2), ("bob", 4)]
    assert students[0].name == "Ada\nLovelace"


def test_duplicate_id_names_the_file_and_both_lines() -> None:
    with pytest.raises(RosterError, match=r"roster\.csv:4: duplicate student id 'ada'.*line 2"):
        parse("student_id,name\nada,A\nbob,B\nada,C\n")


def test_ids_differing_only_in_case_are_duplicates() -> None:
    with pytest.raises(RosterError, match=r"roster\.csv:3: duplicate student id 'ADA'"):
        parse("student_id\nada\nADA\n")


def test_missing_id_column_names_line_one_and_the_columns_found() -> None:
    with pytest.raises(RosterError, match=r"roster\.csv:1: missing required column 'student_id'"):
        parse("name,email\nAda,ada@x.edu\n")


def test_duplicate_header_column_is_an_error() -> None:
    with pytest.raises(RosterError, match=r"roster\.csv:1: column 'name' appears twice"):
        parse("student_id,name,name\nada,A,B\n")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (",Nobody", "empty student_id"),
        ("../etc,Evil", "contains '/'"),
        ("a\\b,Back", "contains '\\'"),
        (".hidden,Dot", "cannot start with '.'"),
        ("con,Device", "reserved device name"),
        ("x" * 101 + ",Long", "longer than 100"),
        ("a\u200bb,Hidden", "characters that cannot be shown"),
        ("ok,Ok,extra", "3 fields but the header has 2"),
    ],
)
def test_bad_row_keeps_the_student_with_a_problem_and_the_rest_go_on(
    row: str, problem: str
) -> None:
    bad, good = parse(f"student_id,name\n{row}\nbob,Bob\n")
    assert bad.problem is not None
    assert problem in bad.problem
    assert bad.line == 2
    assert (good.student_id, good.problem) == ("bob", None)


def test_trailing_empty_cells_and_comma_only_rows_are_not_problems() -> None:
    students = parse("student_id,name\nada,Ada,,\n,,\nbob\n")
    assert [(s.student_id, s.name, s.problem) for s in students] == [
        ("ada", "Ada", None),
        ("bob", "", None),
    ]


def test_missing_file_is_a_roster_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(RosterError, match=r"nope\.csv: cannot read the roster"):
        load_roster(missing)


def test_folder_instead_of_file_is_a_roster_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="cannot read the roster"):
        load_roster(tmp_path)


def test_file_not_in_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("student_id,name\nada,Ada\njose,Jos\u00e9\n".encode("latin-1"))
    with pytest.raises(RosterError, match=r"latin1\.csv:.*not UTF-8"):
        load_roster(path)


def test_unterminated_quote_names_the_line_where_the_record_starts() -> None:
    with pytest.raises(RosterError, match=r"roster\.csv:3: not valid CSV"):
        parse('student_id,name\nada,Ada\nbob,"Bob\ncy,Cy\n')


def test_empty_file_is_an_error() -> None:
    with pytest.raises(RosterError, match="empty roster"):
        parse("")


# repo_for ---------------------------------------------------------------------------


def student(**values: str) -> Student:
    sid = values.get("student_id", "ada")
    return Student(student_id=sid, line=7, columns={"student_id": sid, **values})


def test_relative_template_is_resolved_against_the_course_folder(tmp_path: Path) -> None:
    repo = repo_for(student(), "repos/{student_id}.bundle", base=tmp_path)
    assert repo == str(tmp_path / "repos" / "ada.bundle")


def test_url_template_is_filled_from_roster_columns_and_kept() -> None:
    ada = student(github_username="ada-l")
    url = repo_for(ada, "https://github.com/org/hw1-{github_username}.git", base=Path("/c"))
    assert url == "https://github.com/org/hw1-ada-l.git"
    scp = repo_for(ada, "git@github.com:org/hw1-{github_username}.git", base=Path("/c"))
    assert scp == "git@github.com:org/hw1-ada-l.git"


def test_roster_repo_column_overrides_the_template(tmp_path: Path) -> None:
    ada = Student(student_id="ada", repo="../elsewhere/ada", columns={"student_id": "ada"})
    assert repo_for(ada, "repos/{student_id}", base=tmp_path / "course") == str(
        tmp_path / "elsewhere" / "ada"
    )


def test_template_field_the_row_lacks_names_the_field_and_the_student() -> None:
    with pytest.raises(SourceError, match=r"needs 'github_username'.*'ada' \(line 7\)") as info:
        repo_for(student(), "https://github.com/org/{github_username}.git", base=Path("/c"))
    assert info.value.student_id == "ada"


def test_template_field_left_empty_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="needs 'github_username'"):
        repo_for(student(github_username=""), "x/{github_username}", base=Path("/c"))


def test_roster_value_with_a_slash_cannot_escape_the_template() -> None:
    with pytest.raises(SourceError, match="cannot be put into a repository path"):
        repo_for(student(github_username="../../etc"), "repos/{github_username}", base=Path("/c"))


def test_template_with_attribute_access_is_refused() -> None:
    with pytest.raises(SourceError, match="plain roster column name"):
        repo_for(student(), "repos/{student_id.__class__}", base=Path("/c"))


def test_remote_detection_follows_git() -> None:
    assert is_remote("https://host/x.git")
    assert is_remote("ssh://git@host/x")
    assert is_remote("git@host:org/x.git")
    assert not is_remote("repos/ada")
    assert not is_remote("/abs/repos/a:b")
    assert not is_remote("./a:b")


# properties -------------------------------------------------------------------------

SAFE_ID = st.text(
    alphabet=st.characters(
        min_codepoint=33, max_codepoint=0x2FF, blacklist_characters='/\\<>:"|?*,'
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: id_problem(s) is None and s == s.strip())
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(SAFE_ID, TEXT, TEXT),
        max_size=8,
        unique_by=lambda row: row[0].strip().casefold(),
    ),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    bom=st.booleans(),
    blank_after=st.sets(st.integers(min_value=0, max_value=8)),
)
def test_any_written_native_roster_reads_back_the_same_students(
    rows: list[tuple[str, str, str]], quoting: int, bom: bool, blank_after: set[int]
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=quoting, lineterminator="\n")
    writer.writerow(["student_id", "name", "email"])
    lines = {}
    for index, row in enumerate(rows):
        lines[row[0].strip()] = buffer.getvalue().count("\n") + 1
        writer.writerow(row)
        if index in blank_after:
            buffer.write("\n")
    text = ("\ufeff" if bom else "") + buffer.getvalue()
    students = parse(text)
    assert [(s.student_id, s.name, s.email) for s in students] == [
        (i.strip(), n.strip(), e.strip()) for i, n, e in rows
    ]
    assert all(s.line == lines[s.student_id] for s in students)
    assert all(s.problem is None for s in students)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_a_roster_error(text: str) -> None:
    failure: RosterError | None = None
    students: list[Student] = []
    try:
        students = parse("student_id,name\n" + text)
    except RosterError as exc:
        failure = exc
    if failure is not None:
        assert "roster.csv:" in str(failure)
    for s in students:
        assert s.problem is not None or id_problem(s.student_id) is None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=40))
def test_an_accepted_id_is_always_one_file_name_inside_the_folder(
    tmp_path: Path, student_id: str
) -> None:
    if id_problem(student_id) is not None:
        return
    path = tmp_path / f"{student_id}.md"
    assert path.parent == tmp_path
    if len(path.name.encode()) > 255:  # too long in bytes for the file system: not our rule
        return
    path.write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    path.unlink()
