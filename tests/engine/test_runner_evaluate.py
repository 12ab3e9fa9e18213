"""se_utils_cli (grader/engine/evaluate.py): JUnit XML -> tests report, and explicit results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.api.models import STATUS_NAMES, STUDENT_RESULTS, StatusCode
from grader.engine import evaluate
from grader.engine.evaluate import (
    ReportError,
    evaluate_xml,
    parse_junit,
    summarize,
    validate_report,
)
from tests.support.pytest_junit import pytest_junit


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_pytest_report_of_either_family_converts_with_every_status(
    tmp_path: Path, family: str
) -> None:
    cases = parse_junit(pytest_junit(tmp_path, family))
    statuses = {case["name"]: case["status"] for case in cases}
    assert statuses == {
        "test_ok": "ok",
        "test_fail": "failure",
        "test_error": "error",
        "test_skip": "skipped",
        "test_in_class": "ok",
    }
    failed = next(case for case in cases if case["name"] == "test_fail")
    assert "math is broken" in failed["failure"]
    assert next(c for c in cases if c["name"] == "test_in_class")["classname"].endswith("TestGroup")
    assert next(c for c in cases if c["name"] == "test_skip")["message"].endswith("not today")


def test_skipped_tests_count_for_neither_side_of_the_score() -> None:
    cases = parse_junit(b"""<testsuite name="s">
        <testcase classname="c" name="a" time="0.5"/>
        <testcase classname="c" name="b"><failure message="no">trace</failure></testcase>
        <testcase classname="c" name="c"><skipped message="later"/></testcase>
    </testsuite>""")
    assert [case["status"] for case in cases] == ["ok", "failure", "skipped"]
    assert cases[0]["time"] == 0.5
    assert summarize(cases) == {"status": "FAIL", "score": 50.0, "reason": None}


def test_every_test_ok_is_ok_with_full_score() -> None:
    cases = parse_junit(b'<testsuites><testsuite><testcase name="a"/></testsuite></testsuites>')
    assert summarize(cases) == {"status": "OK", "score": 100.0, "reason": None}


def test_report_with_nothing_to_count_is_fail_with_zero() -> None:
    result = summarize(parse_junit(b"<testsuites/>"))
    assert (result["status"], result["score"]) == ("FAIL", 0.0)


def test_missing_or_unreadable_xml_is_fail_with_zero_and_a_reason() -> None:
    assert evaluate_xml(None) == (None, evaluate._failed("no unit-tests report was written"))
    cases, result = evaluate_xml(b"<testsuite><testcase")
    assert cases is None and result["score"] == 0.0
    assert "not well-formed XML at line 1" in result["reason"]
    assert "<html>" in evaluate_xml(b"<html/>")[1]["reason"]


def test_xml_declaring_a_dtd_is_refused_before_any_entity_expands() -> None:
    bomb = b"""<?xml version="1.0"?>
    <!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
    <testsuite><testcase name="&lol2;"/></testsuite>"""
    with pytest.raises(ReportError, match="DTD is not allowed"):
        parse_junit(bomb)


def test_oversized_xml_is_refused() -> None:
    with pytest.raises(ReportError, match="more than"):
        parse_junit(b" " * (evaluate.MAX_XML_BYTES + 1))


NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
STATUS = st.sampled_from(["ok", "failure", "error", "skipped"])


@settings(max_examples=60, deadline=None, database=None)  # nothing written to the checkout
@given(st.lists(st.tuples(NAMES, NAMES, STATUS), max_size=12), st.booleans())
def test_any_junit_document_converts_to_its_tests_in_order(
    tests: list[tuple[str, str, str]], bare: bool
) -> None:
    body = []
    for name, classname, status in tests:
        inner = {"ok": "", "failure": "<failure message='m'>t</failure>",
                 "error": "<error message='e'/>", "skipped": "<skipped/>"}[status]  # fmt: skip
        body.append(
            f"<testcase name={quoteattr(name)} classname={quoteattr(classname)}>{inner}</testcase>"
        )
    suite = f"<testsuite>{''.join(body)}</testsuite>"
    document = (suite if bare else f"<testsuites>{suite}</testsuites>").encode()
    cases = parse_junit(document)
    assert [(c["name"], c["classname"], c["status"]) for c in cases] == tests
    assert validate_report(json.loads(json.dumps(cases))) == cases


@settings(max_examples=200, deadline=None, database=None)  # nothing written to the checkout
@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_convert_or_raise_report_error(data: bytes) -> None:
    try:
        cases = parse_junit(data)
    except ReportError:
        return
    assert validate_report(cases) == cases


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, database=None)  # nothing written to the checkout
@given(JSON)
def test_any_json_value_is_a_valid_report_or_a_report_error(value: object) -> None:
    try:
        checked = validate_report(value)
    except ReportError:
        return
    assert validate_report(checked) == checked


@settings(max_examples=100, deadline=None, database=None)  # nothing written to the checkout
@given(st.lists(st.fixed_dictionaries(
    {"name": NAMES, "status": STATUS},
    optional={"classname": NAMES, "time": st.floats(), "failure": st.text(max_size=50)},
), max_size=8))  # fmt: skip
def test_well_formed_reports_keep_every_test(value: list[dict[str, object]]) -> None:
    checked = validate_report(value)
    assert [(c["name"], c["status"]) for c in checked] == [(v["name"], v["status"]) for v in value]
    assert all(c["time"] >= 0 for c in checked)


def test_report_item_with_wrong_types_names_the_item() -> None:
    with pytest.raises(ReportError, match=r"item 2 .*time is not a number"):
        validate_report([{"name": "a", "status": "ok"}, {"name": "b", "status": "ok", "time": "1"}])


# The command, run as a file the way the sandbox runs it -----------------------------------------


def toolkit(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Path]]:
    paths = {
        "SE_PATH_UNIT_TESTS_REPORT": tmp_path / "unit.xml",
        "SE_PATH_FINAL_TESTS_REPORT": tmp_path / "report.json",
        "SE_PATH_SCENARIO_RESULT": tmp_path / "result.json",
    }
    env = {"PATH": "/usr/bin:/bin", **{k: str(v) for k, v in paths.items()}}
    done = subprocess.run(
        [sys.executable, "-I", "-S", evaluate.__file__, *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done, paths


def test_evaluate_command_writes_report_and_result(tmp_path: Path) -> None:
    (tmp_path / "unit.xml").write_bytes(pytest_junit(tmp_path, "xunit2"))
    done, paths = toolkit(tmp_path, "evaluate")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(paths["SE_PATH_FINAL_TESTS_REPORT"].read_text())) == 5
    result = json.loads(paths["SE_PATH_SCENARIO_RESULT"].read_text())
    assert result == {"status": "FAIL", "score": 50.0, "reason": None}
    assert "2 of 4 tests ok" in done.stdout


def test_evaluate_command_without_xml_fails_with_reason(tmp_path: Path) -> None:
    done, paths = toolkit(tmp_path, "evaluate")
    assert done.returncode == 1
    result = json.loads(paths["SE_PATH_SCENARIO_RESULT"].read_text())
    assert result == {"status": "FAIL", "score": 0.0, "reason": "no unit-tests report was written"}
    assert not paths["SE_PATH_FINAL_TESTS_REPORT"].exists()


def test_evaluate_command_refuses_a_fifo_in_the_reports_place(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "unit.xml")
    done, paths = toolkit(tmp_path, "evaluate")
    assert done.returncode == 1
    assert (
        "not a regular file" in json.loads(paths["SE_PATH_SCENARIO_RESULT"].read_text())["reason"]
    )


def test_scenario_result_sets_status_and_keeps_the_score(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text('{"status": "FAIL", "score": 40.0, "reason": null}')
    done, paths = toolkit(tmp_path, "scenario_result", "status", "OK")
    assert done.returncode == 0
    assert json.loads(paths["SE_PATH_SCENARIO_RESULT"].read_text())["status"] == "OK"
    assert json.loads(paths["SE_PATH_SCENARIO_RESULT"].read_text())["score"] == 40.0


@pytest.mark.parametrize("args", [("scenario_result", "status", "PASS"), ("evalute",), ()])
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    done, _ = toolkit(tmp_path, *args)
    assert done.returncode == 2
    assert "se_utils_cli" in done.stderr


def test_long_texts_are_capped_once_and_stay_capped() -> None:
    huge = [{"name": "n" * 5000, "status": "failure", "failure": "x" * 50_000}]
    checked = validate_report(huge)
    assert len(checked[0]["failure"]) == evaluate.MESSAGE_CAP
    assert checked[0]["failure"].endswith(evaluate.TRUNCATED)
    assert validate_report(checked) == checked


def test_the_toolkits_status_table_agrees_with_the_status_codes() -> None:
    # evaluate.py runs alone in the sandbox (standard library only): its own table
    assert evaluate.STATUS_CODES == {
        "BE": StatusCode.BUILD_ERROR,
        "RE": StatusCode.RUNTIME_ERROR,
        "TLE": StatusCode.TIME_LIMIT,
        "FAIL": StatusCode.FAIL,
        "OK": StatusCode.OK,
    }
    assert {STATUS_NAMES[c] for c in evaluate.STATUS_CODES.values()} == {
        "build error",
        "runtime error",
        "time limit exceeded",
        "fail",
        "ok",
    }
    assert set(evaluate.STATUS_CODES.values()) == STUDENT_RESULTS
