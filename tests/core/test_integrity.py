"""Integrity flags and the debug-log fetch, decided from plain values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.api.models import parse_submission
from grader.integrity import (
    DEBUG_LOG_SLACK,
    DUPLICATE_TESTS,
    ENGINE_WARNING,
    FILES_DROPPED,
    NO_REPORT,
    PASSED_DESPITE_RUN,
    UNKNOWN_TESTS,
    Evidence,
    clean_debug_size,
    evidence_of,
    integrity_flags,
    wants_debug_log,
)
from grader.records import TestOutcome

PASSING = (TestOutcome("test_a"), TestOutcome("test_b"))
CLEAN_LOG = (
    "sandbox: bwrap (bubblewrap 0.8.0)\n"
    "stage run: exit code 0 after 0.52 s\n"
    "stage test: exit code 0 after 0.10 s\n"
    "result: status 15, score 100\n"
)


def kinds(evidence: Evidence) -> list[str]:
    return [flag.kind for flag in integrity_flags(evidence)]


def reason(evidence: Evidence, kind: str) -> str:
    (found,) = [f.reason for f in integrity_flags(evidence) if f.kind == kind]
    return found


def submission(
    status: int = 15,
    *,
    run: dict[str, Any] | None = None,
    report: int | None = 120,
    debug: int | None = 150,
    test: dict[str, Any] | None = None,
) -> Any:
    stages = {
        "run": run if run is not None else {"skipped": False, "exit_code": 0},
        "test": test if test is not None else {"skipped": False, "exit_code": 0},
    }
    streams = {
        "tests_report": None if report is None else {"size": report},
        "debug_log": None if debug is None else {"size": debug},
    }
    return parse_submission(
        {
            "id": 7,
            "executing": False,
            "result": {"status": {"code": status, "name": "x"}},
            "project": {"id": "hw1"},
            "stages": stages,
            "streams": streams,
        }
    )


# --- the flags ------------------------------------------------------------------------------


def test_agreeing_evidence_raises_nothing() -> None:
    evidence = Evidence(run_ran=True, run_exit_code=0, tests=PASSING, debug_log=CLEAN_LOG)
    assert integrity_flags(evidence) == ()


@pytest.mark.parametrize(
    ("ended", "said"),
    [
        ({"run_exit_code": 1}, "the run stage exited with code 1"),
        ({"run_signal": 9}, "the run stage was killed by signal 9"),
        ({"timed_out": True, "run_signal": 9}, "the run stage ran past its time limit"),
    ],
)
def test_a_run_stage_that_ended_early_but_all_passed_is_flagged(
    ended: dict[str, Any], said: str
) -> None:
    evidence = Evidence(run_ran=True, tests=PASSING, **ended)
    assert reason(evidence, PASSED_DESPITE_RUN) == (
        f"{said}, but the tests report says all 2 tests passed"
    )


@pytest.mark.parametrize(
    "tests",
    [
        (TestOutcome("test_a"), TestOutcome("test_b", status="failure")),
        (TestOutcome("test_a", status="skipped"),),
        (),
    ],
)
def test_a_failing_run_stage_with_failures_in_the_report_agrees(
    tests: tuple[TestOutcome, ...],
) -> None:
    assert kinds(Evidence(run_ran=True, run_exit_code=1, tests=tests)) == []


def test_a_run_stage_that_never_ran_is_no_evidence() -> None:
    evidence = Evidence(run_ran=False, run_exit_code=1, report_written=False, tests=PASSING)
    assert kinds(evidence) == []


def test_no_report_after_a_run_stage_that_ended_on_its_own_is_flagged() -> None:
    evidence = Evidence(run_ran=True, run_exit_code=0, report_written=False)
    assert (
        reason(evidence, NO_REPORT)
        == "the run stage exited with code 0, but no tests report was written"
    )


def test_no_report_after_a_killed_run_stage_or_when_none_is_expected_is_not() -> None:
    assert kinds(Evidence(run_ran=True, run_signal=9, report_written=False)) == []
    assert kinds(Evidence(run_ran=True, timed_out=True, report_written=False)) == []
    unexpected = Evidence(
        run_ran=True, run_exit_code=0, report_written=False, report_expected=False
    )
    assert kinds(unexpected) == []
    said = "stage test: no unit-tests report was written\n"
    assert kinds(
        Evidence(run_ran=True, report_written=False, report_expected=False, debug_log=said)
    ) == [NO_REPORT]


def test_files_dropped_from_the_upload_are_counted_and_named() -> None:
    log = CLEAN_LOG + "".join(
        f"workspace: submitted file .sphere-engine/tests/t{n}.py dropped: it is at a read-only"
        " path\n"
        for n in range(7)
    )
    log += "workspace: 20 more submitted files at read-only paths dropped\n"
    said = reason(Evidence(debug_log=log), FILES_DROPPED)
    assert said.startswith("27 submitted file(s) at read-only paths were dropped")
    assert ".sphere-engine/tests/t0.py, " in said and said.endswith(", ...")


def test_warning_lines_of_the_debug_log_are_flagged_and_others_are_not() -> None:
    log = (
        "sandbox: unshare (namespaces)\nsandbox warning: no cgroups here\n"
        "warning: harness: a student process could not be started: EAGAIN\n"
    )
    assert reason(Evidence(debug_log=log), ENGINE_WARNING) == (
        "the engine's debug log warns: "
        "warning: harness: a student process could not be started: EAGAIN"
    )
    assert kinds(Evidence(debug_log="sandbox warning: no cgroups here\n")) == []


def test_a_test_named_twice_is_flagged_but_the_same_name_in_two_classes_is_not() -> None:
    twice = (TestOutcome("test_a", "m"), TestOutcome("test_a", "m"), TestOutcome("test_b", "m"))
    assert reason(Evidence(tests=twice), DUPLICATE_TESTS) == (
        "the tests report names 1 test(s) more than once: test_a (2 times)"
    )
    apart = (TestOutcome("test_a", "m.TestX"), TestOutcome("test_a", "m.TestY"))
    assert kinds(Evidence(tests=apart)) == []


def test_unknown_tests_are_flagged_only_when_defined_ones_are_missing_too() -> None:
    defined = frozenset({"test_a", "test_b", "test_c"})
    forged = (TestOutcome("test_a"), TestOutcome("test_made_up"))
    assert reason(Evidence(tests=forged, defined=defined), UNKNOWN_TESTS) == (
        "the tests report names 1 test(s) the project does not define (test_made_up) "
        "and lacks 2 it does (test_b, test_c)"
    )
    extra = (*(TestOutcome(n) for n in sorted(defined)), TestOutcome("test_generated"))
    assert kinds(Evidence(tests=extra, defined=defined)) == []  # nothing missing
    partial = (TestOutcome("test_a"),)
    assert kinds(Evidence(tests=partial, defined=defined)) == []  # nothing unknown
    cases = tuple(TestOutcome(f"{n}[{i}]") for n in sorted(defined) for i in range(2))
    assert kinds(Evidence(tests=cases, defined=defined)) == []  # parameters are the same test
    assert kinds(Evidence(tests=forged)) == []  # nothing known about the project


@given(
    names=st.lists(st.from_regex(r"test_[a-z]{1,8}", fullmatch=True), min_size=1, unique=True),
    seconds=st.floats(0, 100),
)
def test_a_clean_honest_run_never_raises_a_flag(names: list[str], seconds: float) -> None:
    tests = tuple(TestOutcome(n) for n in names)
    log = CLEAN_LOG.replace("0.52", f"{seconds:.2f}")
    evidence = Evidence(
        run_ran=True, run_exit_code=0, tests=tests, defined=frozenset(names), debug_log=log
    )
    assert integrity_flags(evidence) == ()


def test_evidence_comes_from_the_engine_answer() -> None:
    killed = submission(13, run={"skipped": False, "exit_code": None, "signal": 9})
    evidence = evidence_of(killed, PASSING, report_text="[...]", debug_log="")
    assert (evidence.run_ran, evidence.run_signal, evidence.timed_out) == (True, 9, True)
    assert kinds(evidence) == [PASSED_DESPITE_RUN]
    none = evidence_of(submission(), (), report_text="", debug_log="")
    assert not none.report_written
    said = "stage test: no unit-tests report was written\n"
    assert not evidence_of(submission(), (), report_text="[]", debug_log=said).report_written
    skipped = submission(11, run={"skipped": True})
    assert not evidence_of(skipped, (), report_text="", debug_log="").run_ran


# --- when the debug log is fetched --------------------------------------------------------


def test_a_plain_result_needs_no_debug_log_once_a_clean_one_is_known() -> None:
    assert wants_debug_log(submission(15, debug=150), clean_size=None)  # the first one
    assert not wants_debug_log(submission(15, debug=150), clean_size=140)
    assert not wants_debug_log(submission(14, debug=140 + DEBUG_LOG_SLACK), clean_size=140)
    assert wants_debug_log(submission(14, debug=141 + DEBUG_LOG_SLACK), clean_size=140)


@pytest.mark.parametrize(
    ("status", "run", "report"),
    [
        (12, None, 120),  # a runtime error: as always
        (13, None, None),  # a time limit
        (15, {"skipped": False, "exit_code": 1}, 120),  # all passed, the run stage failed
        (15, {"skipped": False, "exit_code": None, "signal": 9}, 120),
        (14, {"skipped": False, "exit_code": 0}, None),  # no report
    ],
)
def test_disagreeing_or_unusual_results_fetch_the_debug_log(
    status: int, run: dict[str, Any] | None, report: int | None
) -> None:
    assert wants_debug_log(submission(status, run=run, report=report), clean_size=1_000)


def test_no_report_from_a_project_without_a_test_stage_is_the_normal_case() -> None:
    # nothing was to write one: measured like any plain result, and a clean log not kept
    no_stage = {"skipped": True}
    assert wants_debug_log(submission(15, report=None, test=no_stage), clean_size=None)
    assert not wants_debug_log(submission(15, report=None, test=no_stage), clean_size=150)
    assert not wants_debug_log(submission(14, report=0, test=no_stage), clean_size=150)
    assert clean_debug_size(submission(15, report=None, test=no_stage), CLEAN_LOG) == 150
    # the record names no test stage at all: the same
    bare = parse_submission(
        {
            "id": 8,
            "result": {"status": {"code": 15, "name": "x"}},
            "project": {"id": "hw1"},
            "stages": {"run": {"skipped": False, "exit_code": 0}},
            "streams": {"debug_log": {"size": 150}},
        }
    )
    assert not wants_debug_log(bare, clean_size=150)
    # but a test stage that ran and wrote nothing is looked at, whatever its size
    assert wants_debug_log(submission(15, report=None), clean_size=150)
    assert clean_debug_size(submission(15, report=None), CLEAN_LOG) is None


def test_a_failing_run_stage_with_failures_is_the_normal_case() -> None:
    failing = submission(14, run={"skipped": False, "exit_code": 1})
    assert not wants_debug_log(failing, clean_size=150)


def test_no_debug_log_stream_is_never_fetched() -> None:
    assert not wants_debug_log(submission(12, debug=None), clean_size=None)
    assert not wants_debug_log(submission(12, debug=0), clean_size=None)


def test_only_a_plain_log_that_says_nothing_becomes_the_yardstick() -> None:
    assert clean_debug_size(submission(15, debug=150), CLEAN_LOG) == 150
    dropped = CLEAN_LOG + "workspace: submitted file x dropped: it is at a read-only path\n"
    assert clean_debug_size(submission(15, debug=210), dropped) is None
    warned = CLEAN_LOG + "warning: harness: something odd happened here\n"
    assert clean_debug_size(submission(15, debug=200), warned) is None
    assert clean_debug_size(submission(13, debug=150), CLEAN_LOG) is None
    forged = submission(15, run={"skipped": False, "exit_code": 1}, debug=150)
    assert clean_debug_size(forged, CLEAN_LOG) is None  # kept: the record disagrees
