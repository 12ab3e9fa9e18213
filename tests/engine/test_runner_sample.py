"""The real sample course projects (hw1 Python, hw2 C) through run_submission."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from runner_kit import needs_sandbox, report, sample_spec, sandbox_processes, text

from grader.api.models import StatusCode
from grader.engine.runner import run_submission

pytestmark = [pytest.mark.sandbox, needs_sandbox]


def test_hw2_correct_c_solution_builds_and_passes_eight_tests(tmp_path: Path) -> None:
    outcome = run_submission(sample_spec(tmp_path, "hw2", "amartin"))
    assert (outcome.status, outcome.score) == (StatusCode.OK, 100.0), text(outcome, "debug_log")
    assert len(report(outcome)) == 8
    assert [s.name for s in outcome.stages if not s.skipped] == ["build", "run", "test"]


def test_hw2_missing_semicolon_is_a_build_error_with_gccs_message(tmp_path: Path) -> None:
    outcome = run_submission(sample_spec(tmp_path, "hw2", "cokafor"))
    assert outcome.status == StatusCode.BUILD_ERROR
    assert re.search(
        r"rpn\.c:\d+:\d+: error: expected .;. before", text(outcome, "stage_build_error")
    )
    assert "tests_report" not in outcome.streams
    assert {s.name for s in outcome.stages if s.skipped} >= {"run", "test"}


def test_hw1_infinite_loop_fails_only_the_tests_that_call_it(tmp_path: Path) -> None:
    outcome = run_submission(sample_spec(tmp_path, "hw1", "dnovak"))
    assert outcome.status == StatusCode.FAIL, text(outcome, "debug_log")
    failed = {t["name"]: t.get("failure", "") for t in report(outcome) if t["status"] != "ok"}
    assert sorted(failed) == [
        "test_hidden_top_words_ties_alphabetical",
        "test_public_top_words_simple",
    ]
    assert all("timed out after 1 s" in message for message in failed.values())
    assert outcome.score == 80.0
    assert "harness: 3 student processes started" in text(outcome, "debug_log")
    assert not sandbox_processes()


def test_hw2_partial_solution_fails_the_readmes_four_hidden_tests(tmp_path: Path) -> None:
    outcome = run_submission(sample_spec(tmp_path, "hw2", "bchen"))
    assert outcome.status == StatusCode.FAIL
    failed = sorted(t["name"] for t in report(outcome) if t["status"] != "ok")
    assert failed == [
        "test_hidden_division_truncates_toward_zero",
        "test_hidden_negative_numbers",
        "test_hidden_stack_underflow",
        "test_hidden_too_many_operands",
    ]
    assert outcome.score == 50.0
