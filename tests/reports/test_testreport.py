"""Tests reports in three formats -> TestOutcome; anything else -> TestReportError."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.codec import from_json, to_json
from grader.errors import TestReportError
from grader.records import TestOutcome
from grader.scoring import detect_format, parse_tests_report
from grader.scoring.testreport import MESSAGE_CAP, TRUNCATED
from tests.support.pytest_junit import pytest_junit


def run_pytest(tmp_path: Path, family: str) -> str:
    return pytest_junit(tmp_path, family).decode()


@pytest.fixture(scope="module", params=["xunit1", "xunit2"])
def pytest_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return run_pytest(tmp_path_factory.mktemp(request.param), request.param)


def test_pytest_junit_report_gives_every_test_with_its_status(pytest_report: str) -> None:
    outcomes = parse_tests_report(pytest_report)
    got = {o.name: (o.classname, o.status) for o in outcomes}
    assert got == {
        "test_ok": ("test_demo", "ok"),
        "test_fail": ("test_demo", "failure"),
        "test_error": ("test_demo", "error"),
        "test_skip": ("test_demo", "skipped"),
        "test_in_class": ("test_demo.TestGroup", "ok"),
    }


def test_pytest_junit_report_keeps_messages_and_tracebacks(pytest_report: str) -> None:
    by_name = {o.name: o for o in parse_tests_report(pytest_report)}
    assert by_name["test_fail"].message.startswith("AssertionError: math is broken")
    assert "assert 1 + 1 == 3" in by_name["test_fail"].output
    assert "fixture exploded" in by_name["test_error"].message
    assert by_name["test_skip"].message == "not today"
    assert by_name["test_ok"].message == ""


def test_xunit1_report_keeps_captured_output(tmp_path: Path) -> None:
    outcomes = parse_tests_report(run_pytest(tmp_path, "xunit1"))
    assert "hello out" in next(o for o in outcomes if o.name == "test_ok").output


def test_junit_with_a_bare_testsuite_root_is_read(pytest_report: str) -> None:
    suite = ET.fromstring(pytest_report).find("testsuite")  # noqa: S314 - our own pytest's XML
    assert suite is not None
    bare = ET.tostring(suite, encoding="unicode")
    assert [o.name for o in parse_tests_report(bare)] == [
        o.name for o in parse_tests_report(pytest_report)
    ]


def test_junit_nested_suites_are_flattened_in_order() -> None:
    text = (
        "<testsuites><testsuite name='a'><testcase name='one'/>"
        "<testsuite name='b'><testcase name='two' time='1,5'/></testsuite></testsuite>"
        "<testsuite name='c'><testcase name='three' time='junk'/></testsuite></testsuites>"
    )
    outcomes = parse_tests_report(text)
    assert [(o.name, o.time) for o in outcomes] == [("one", 0.0), ("two", 15.0), ("three", 0.0)]


def test_junit_with_a_dtd_is_refused_so_no_entity_expands() -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<testsuite><testcase name="&lol2;"/></testsuite>'
    )
    with pytest.raises(TestReportError, match="DTD"):
        parse_tests_report(laughs)


def test_junit_output_mentioning_a_doctype_is_fine() -> None:
    text = (
        "<testsuite><testcase name='page'><failure message='bad'>"
        "&lt;!DOCTYPE html&gt; was printed</failure></testcase></testsuite>"
    )
    assert parse_tests_report(text)[0].output == "<!DOCTYPE html> was printed"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<testsuite><testcase name='x'>", "line 1, column"),
        ("<html><body/></html>", "<testsuites> or <testsuite>"),
        ("<testsuite><testcase/></testsuite>", "testcase 1 has no name"),
    ],
)
def test_broken_junit_names_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(TestReportError, match="JUnit XML") as caught:
        parse_tests_report(text)
    assert fragment in str(caught.value)


SPHERE_ENGINE = [
    {"name": "test_a", "classname": "tests.test_x", "status": "ok", "time": 0.25},
    {
        "name": "test_b",
        "classname": "tests.test_x",
        "status": "failure",
        "time": 1,
        "failure": "AssertionError: assert 2 == 3\ndef test_b():\n>   assert add(1, 1) == 3",
    },
    {"name": "test_c", "classname": "", "status": "error", "time": 0, "error": "ImportError"},
    {"name": "test_d", "status": "skipped", "message": "needs numpy"},
]


def test_sphere_engine_report_maps_status_and_splits_message_from_traceback() -> None:
    outcomes = parse_tests_report(json.dumps(SPHERE_ENGINE))
    traceback = SPHERE_ENGINE[1]["failure"]
    assert outcomes == [
        TestOutcome("test_a", "tests.test_x", "ok", 0.25),
        TestOutcome(
            "test_b",
            "tests.test_x",
            "failure",
            1.0,
            "AssertionError: assert 2 == 3",
            str(traceback),
        ),
        TestOutcome("test_c", "", "error", 0.0, "ImportError"),
        TestOutcome("test_d", "", "skipped", 0.0, "needs numpy"),
    ]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"name": "t", "status": "passed"}, "item 1: status 'passed' is not one of"),
        ({"status": "ok"}, "item 1: 'name' is missing"),
        ({"name": 3, "status": "ok"}, "'name' must be a string, got a number"),
        ("test_a", "item 1: expected an object, got a string"),
    ],
)
def test_bad_sphere_engine_item_is_named(item: object, fragment: str) -> None:
    with pytest.raises(TestReportError) as caught:
        parse_tests_report(json.dumps([item]))
    assert fragment in str(caught.value)


def test_non_finite_json_numbers_are_refused() -> None:
    with pytest.raises(TestReportError, match="NaN"):
        parse_tests_report('[{"name": "t", "status": "ok", "time": NaN}]')


def test_lone_surrogates_become_replacement_characters_and_survive_storage() -> None:
    outcomes = parse_tests_report(
        '[{"name": "t\\ud800", "status": "failure", "failure": "\\udfff"}]'
    )
    assert outcomes[0].name == "t\ufffd"
    assert from_json(TestOutcome, to_json(outcomes[0])) == outcomes[0]


def test_long_messages_are_capped() -> None:
    item = {"name": "t", "status": "failure", "failure": "x" * (MESSAGE_CAP * 3)}
    message = parse_tests_report(json.dumps([item]))[0].message
    assert message.endswith(TRUNCATED)
    assert len(message) == MESSAGE_CAP + len(TRUNCATED)


GRADESCOPE = {
    "execution_time": 3,
    "tests": [
        {"name": "compiles", "score": 1, "max_score": 1, "status": "passed"},
        {
            "name": "edge cases",
            "score": 1,
            "max_score": 4,
            "output": "off by one",
            "visibility": "after_due_date",
        },
        {"score": 0, "max_score": 5, "number": "2.1", "status": "failed", "visibility": "hidden"},
        {"name": "later", "score": 2, "max_score": 2, "visibility": "after_published"},
    ],
}


def test_gradescope_results_keep_points_status_and_visibility() -> None:
    outcomes = parse_tests_report(json.dumps(GRADESCOPE))
    got = [(o.name, o.status, o.points, o.max_points, o.visibility) for o in outcomes]
    assert got == [
        ("compiles", "ok", 1.0, 1.0, None),
        ("edge cases", "failure", 1.0, 4.0, "after_due_date"),
        ("test 2.1", "failure", 0.0, 5.0, "hidden"),
        ("later", "ok", 2.0, 2.0, "hidden"),
    ]
    assert outcomes[1].output == "off by one"


def test_gradescope_total_without_tests_is_one_outcome() -> None:
    outcomes = parse_tests_report('{"score": 42.5, "output": "well done"}')
    assert [(o.name, o.points, o.output) for o in outcomes] == [("autograder", 42.5, "well done")]


@pytest.mark.parametrize(
    ("report", "fragment"),
    [
        ({"output": "nothing"}, "neither a 'tests' list nor a 'score'"),
        ({"tests": {"a": 1}}, "'tests' must be a list"),
        ({"tests": [{"name": "t", "score": "1"}]}, "test 1: 'score' must be a number"),
        ({"tests": [{"name": "t", "status": "ok"}]}, "status 'ok' is not 'passed' or 'failed'"),
        ({"tests": [{"name": "t", "visibility": "never"}]}, "visibility 'never'"),
    ],
)
def test_bad_gradescope_results_name_the_test(report: object, fragment: str) -> None:
    with pytest.raises(TestReportError, match="Gradescope") as caught:
        parse_tests_report(json.dumps(report))
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[]", "sphere-engine"), ("\ufeff  {}", "gradescope"), ("\n<?xml ?>", "junit")],
)
def test_format_is_detected_from_the_first_character(text: str, kind: str) -> None:
    assert detect_format(text) == kind


def test_blank_report_is_no_tests_and_prose_is_an_error() -> None:
    assert parse_tests_report(" \n") == []
    with pytest.raises(TestReportError, match="not JSON or XML"):
        parse_tests_report("Segmentation fault (core dumped)")


# Property tests ----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "status", "tests", "score", "time", "x"])
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
XML_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00\ufffe\uffff").filter(
        lambda c: c in "\t\n" or ord(c) >= 0x20
    ),
    max_size=30,
)


def outcomes_or_error(text: str) -> list[TestOutcome] | TestReportError:
    try:
        outcomes = parse_tests_report(text)
    except TestReportError as exc:
        return exc
    assert all(isinstance(o, TestOutcome) for o in outcomes)
    for outcome in outcomes:  # whatever came in can be stored and read back
        assert from_json(TestOutcome, to_json(outcome)) == outcome
    return outcomes


@given(st.text(max_size=300))
def test_any_text_gives_outcomes_or_the_typed_error(text: str) -> None:
    outcomes_or_error(text)


@given(JSON)
def test_any_json_gives_outcomes_or_the_typed_error(value: object) -> None:
    outcomes_or_error(json.dumps(value))
    outcomes_or_error(json.dumps([value]))
    outcomes_or_error(json.dumps({"tests": [value]}))


@given(st.text(st.sampled_from("<>/ '\"=!&;?[]-testcasuiname"), max_size=200))
def test_any_xml_like_text_gives_outcomes_or_the_typed_error(text: str) -> None:
    outcomes_or_error("<" + text)


@given(
    st.lists(
        st.tuples(
            XML_TEXT.filter(lambda s: s.strip() != ""),
            st.sampled_from(["ok", "failure", "error", "skipped"]),
            XML_TEXT,
        ),
        max_size=6,
    )
)
def test_junit_written_by_elementtree_reads_back_unchanged(
    cases: list[tuple[str, str, str]],
) -> None:
    suite = ET.Element("testsuite")
    for name, status, message in cases:
        case = ET.SubElement(suite, "testcase", name=name, classname="k")
        if status != "ok":
            ET.SubElement(case, status, message=message)
    outcomes = parse_tests_report(ET.tostring(suite, encoding="unicode"))
    # XML normalises attribute whitespace (\t, \n -> space); compare what XML can keep
    expect = [(_attr(n), s, _attr(m) if s != "ok" else "") for n, s, m in cases]
    assert [(o.name, o.status, o.message) for o in outcomes] == expect


def _attr(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.text(min_size=1),
                "classname": st.text(),
                "status": st.sampled_from(["ok", "failure", "error", "skipped"]),
                "time": st.floats(min_value=0, max_value=1e6),
            }
        ),
        max_size=8,
    )
)
def test_valid_sphere_engine_reports_read_back_exactly(items: list[dict[str, object]]) -> None:
    outcomes = parse_tests_report(json.dumps(items))
    assert [(o.name, o.classname, o.status, o.time) for o in outcomes] == [
        (i["name"], i["classname"], i["status"], i["time"]) for i in items
    ]
