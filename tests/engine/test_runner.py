"""run_submission: the five stages in the real sandbox, and the rules that decide a result."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from runner_kit import (
    PYTEST_RUN,
    make_spec,
    needs_sandbox,
    report,
    sample_spec,
    sandbox_processes,
    stages,
    text,
)

from grader.api.models import StatusCode
from grader.engine.runner import Evaluation, Verdict, decide, engine_failure, run_submission
from grader.engine.sandbox import StageExit
from grader.engine.spec import Cancel, Limits, StageSpec

pytestmark = needs_sandbox

TESTS = """
from solution import add

def test_adds():
    assert add(2, 3) == 5

def test_adds_negative():
    assert add(-2, -3) == -5
"""
CONFTEST = "import os, sys\nsys.path.append(os.environ['SE_PATH_WORKSPACE'])\n"
PROJECT = {".sphere-engine/tests/test_add.py": TESTS, ".sphere-engine/tests/conftest.py": CONFTEST}
GOOD = {"solution.py": "def add(a, b):\n    return a + b\n"}


def exited(code: int | None = 0, sig: int | None = None, **kw: object) -> StageExit:
    return StageExit(code, sig, 0.1, 100, **kw)  # type: ignore[arg-type]


# The policy, with plain values ------------------------------------------------------------


def test_timeout_decides_time_limit_whatever_comes_after() -> None:
    failure = engine_failure("run", exited(None, timed_out=True))
    later = Evaluation("post", StatusCode.OK, 100.0)
    assert decide([("run", exited(None, timed_out=True))], failure, later) == Verdict(
        StatusCode.TIME_LIMIT, stage="run"
    )


def test_build_exit_code_is_a_build_error_but_run_exit_code_is_not() -> None:
    assert engine_failure("build", exited(1)) == Verdict(StatusCode.BUILD_ERROR, stage="build")
    assert engine_failure("run", exited(1)) is None
    assert decide([("run", exited(1))], None, None).status == StatusCode.OK


def test_signal_is_a_runtime_error_carrying_the_signal() -> None:
    assert engine_failure("run", exited(None, 11)) == Verdict(
        StatusCode.RUNTIME_ERROR, signal=11, stage="run"
    )


def test_without_evaluation_any_non_run_stage_failing_is_a_runtime_error() -> None:
    verdict = decide([("init", exited(3)), ("run", exited(0))], None, None)
    assert verdict == Verdict(StatusCode.RUNTIME_ERROR, stage="init")


def test_explicit_result_sets_status_and_score() -> None:
    verdict = decide([("test", exited(0))], None, Evaluation("test", StatusCode.FAIL, 50.0))
    assert verdict == Verdict(StatusCode.FAIL, 50.0, stage="test")


# Through the real sandbox -------------------------------------------------------------------


@pytest.mark.sandbox
def test_sample_hw1_correct_solution_is_ok_with_ten_tests(tmp_path: Path) -> None:
    outcome = run_submission(sample_spec(tmp_path, "hw1", "amartin"))
    assert outcome.status == StatusCode.OK, text(outcome, "debug_log")
    assert outcome.score == 100.0
    assert len(report(outcome)) == 10
    assert all(test["status"] == "ok" for test in report(outcome))
    assert [s.name for s in outcome.stages if not s.skipped] == ["run", "test"]
    assert outcome.time > 0 and outcome.memory > 0
    assert not sandbox_processes()


@pytest.mark.sandbox
def test_failing_tests_are_fail_with_percentage_score(tmp_path: Path) -> None:
    upload = {"solution.py": "def add(a, b):\n    return a + b if a > 0 else 0\n"}
    spec = make_spec(
        tmp_path,
        project=PROJECT,
        upload=upload,
        stage_specs=stages(run=PYTEST_RUN, test="se_utils_cli evaluate"),
        read_only=(".sphere-engine",),
    )
    outcome = run_submission(spec)
    assert (outcome.status, outcome.score) == (StatusCode.FAIL, 50.0)
    assert {t["name"]: t["status"] for t in report(outcome)} == {
        "test_adds": "ok",
        "test_adds_negative": "failure",
    }
    test_stage = next(s for s in outcome.stages if s.name == "test")
    assert test_stage.status_changed_to == StatusCode.FAIL


@pytest.mark.sandbox
def test_submitted_file_at_read_only_path_is_dropped_and_noted(tmp_path: Path) -> None:
    cheat = "def test_adds():\n    pass\n\ndef test_adds_negative():\n    pass\n"
    upload = {**GOOD, ".sphere-engine/tests/test_add.py": cheat, "notes.txt": "mine"}
    spec = make_spec(
        tmp_path,
        project=PROJECT,
        upload={**upload, "solution.py": "def add(a, b):\n    return 0\n"},
        stage_specs=stages(run=PYTEST_RUN, test="se_utils_cli evaluate", post="cat notes.txt"),
        read_only=(".sphere-engine",),
    )
    outcome = run_submission(spec)
    assert (outcome.status, outcome.score) == (StatusCode.FAIL, 0.0)
    log = text(outcome, "debug_log")
    assert ".sphere-engine/tests/test_add.py dropped" in log
    assert text(outcome, "stage_post_output") == "mine"  # the rest of the upload is there


@pytest.mark.sandbox
def test_build_error_skips_run_and_test_but_post_runs(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        stage_specs=stages(
            build="echo nope >&2; exit 2", run="echo ran", test="echo t", post="echo p"
        ),
    )
    outcome = run_submission(spec)
    assert outcome.status == StatusCode.BUILD_ERROR
    ran = {s.name: s for s in outcome.stages}
    assert ran["run"].skipped and ran["test"].skipped and not ran["post"].skipped
    assert ran["build"].exit_code == 2 and ran["build"].status_changed_to == StatusCode.BUILD_ERROR
    assert text(outcome, "stage_build_error") == "nope\n"
    assert text(outcome, "stage_post_output") == "p\n"
    assert "stage_run_output" not in outcome.streams


@pytest.mark.sandbox
def test_stage_past_its_timeout_is_time_limit_and_later_stages_skip_except_post(
    tmp_path: Path,
) -> None:
    spec = make_spec(
        tmp_path,
        stage_specs=stages(timeout=0.5, run="sleep 30", test="echo t", post="echo p"),
    )
    outcome = run_submission(spec)
    assert outcome.status == StatusCode.TIME_LIMIT
    ran = {s.name: s for s in outcome.stages}
    assert ran["test"].skipped and not ran["post"].skipped
    assert ran["run"].time < 2.0
    assert "timeout" in text(outcome, "debug_log")
    assert not sandbox_processes()


@pytest.mark.sandbox
def test_segfault_is_runtime_error_with_signal(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, stage_specs=stages(run="kill -SEGV $$"))
    outcome = run_submission(spec)
    assert (outcome.status, outcome.signal) == (StatusCode.RUNTIME_ERROR, 11)


@pytest.mark.sandbox
def test_run_stage_exit_code_alone_is_ok_without_evaluation(tmp_path: Path) -> None:
    outcome = run_submission(make_spec(tmp_path, stage_specs=stages(run="exit 1", post="true")))
    assert outcome.status == StatusCode.OK


@pytest.mark.sandbox
def test_result_left_by_an_earlier_stage_is_ignored(tmp_path: Path) -> None:
    fake = json.dumps([{"name": "t", "status": "ok"}])
    run = (
        f'echo \'{{"status": "OK", "score": 100}}\' > "$SE_PATH_SCENARIO_RESULT"; '
        f"echo '{fake}' > \"$SE_PATH_FINAL_TESTS_REPORT\""
    )
    spec = make_spec(tmp_path, stage_specs=stages(run=run, test="se_utils_cli evaluate"))
    outcome = run_submission(spec)
    assert (outcome.status, outcome.score) == (StatusCode.FAIL, 0.0)
    assert "no unit-tests report was written" in text(outcome, "debug_log")
    assert "tests_report" not in outcome.streams


@pytest.mark.sandbox
def test_post_stage_that_leaves_the_result_alone_keeps_the_test_stages(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, stage_specs=stages(test="se_utils_cli evaluate", post="echo done"))
    outcome = run_submission(spec)
    assert (outcome.status, outcome.score) == (StatusCode.FAIL, 0.0)
    assert text(outcome, "debug_log").count("no unit-tests report was written") == 1
    assert next(s for s in outcome.stages if s.name == "test").status_changed_to == StatusCode.FAIL


@pytest.mark.sandbox
def test_post_stage_can_set_the_status_explicitly(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path, stage_specs=stages(run="true", post="se_utils_cli scenario_result status RE")
    )
    outcome = run_submission(spec)
    assert outcome.status == StatusCode.RUNTIME_ERROR
    assert (
        next(s for s in outcome.stages if s.name == "post").status_changed_to
        == StatusCode.RUNTIME_ERROR
    )


@pytest.mark.sandbox
def test_invalid_tests_report_is_fail_with_zero_and_reason(tmp_path: Path) -> None:
    bad = '[{"name": "t", "status": "passed"}]'
    spec = make_spec(
        tmp_path, stage_specs=stages(test=f"echo '{bad}' > \"$SE_PATH_FINAL_TESTS_REPORT\"")
    )
    outcome = run_submission(spec)
    assert (outcome.status, outcome.score) == (StatusCode.FAIL, 0.0)
    assert "status 'passed' is not ok|failure|error" in text(outcome, "debug_log")
    assert "tests_report" not in outcome.streams


@pytest.mark.sandbox
def test_report_planted_as_a_link_to_a_host_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('[{"name": "t", "status": "ok"}]')
    spec = make_spec(
        tmp_path, stage_specs=stages(test=f'ln -s {secret} "$SE_PATH_FINAL_TESTS_REPORT"')
    )
    outcome = run_submission(spec)
    assert (outcome.status, outcome.score) == (StatusCode.FAIL, 0.0)
    assert "cannot be opened" in text(outcome, "debug_log")


@pytest.mark.sandbox
def test_stages_see_se_variables_and_nothing_from_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", "tok-3f9a-secret")
    spec = make_spec(tmp_path, stage_specs=stages(build="true", run="env | sort", post="env"))
    outcome = run_submission(spec)
    env = dict(line.split("=", 1) for line in text(outcome, "stage_run_output").splitlines())
    assert env["SE_PATH_WORKSPACE"] == "/home/user/workspace" == env["PWD"]
    assert env["SE_CURRENT_STAGE"] == "run"
    assert env["SE_STAGE_BUILD_EXIT_CODE"] == "0"
    assert env["SE_PATH_STAGE_RUN_STDOUT"].endswith("stage_run_output")
    assert env["HOME"] == "/home/user"
    assert "SE_STAGE_RUN_EXIT_CODE=0" in text(outcome, "stage_post_output")
    for stream in outcome.streams.values():
        assert "tok-3f9a-secret" not in stream.read_text(errors="replace")
    assert not {"SPHERE_ENGINE_TOKEN", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST"} & env.keys()


@pytest.mark.sandbox
def test_cancel_kills_the_stage_and_returns_internal_error(tmp_path: Path) -> None:
    cancel = Cancel()
    spec = make_spec(tmp_path, stage_specs=stages(timeout=30, run="sleep 30", post="echo p"))
    threading.Timer(0.3, cancel.set).start()
    outcome = run_submission(spec, cancel=cancel)
    assert outcome.status == StatusCode.INTERNAL_ERROR
    assert all(s.skipped for s in outcome.stages if s.name == "post")
    assert "cancelled" in text(outcome, "debug_log")
    assert not sandbox_processes()


@pytest.mark.sandbox
def test_projects_extra_read_only_paths_are_shown_to_every_stage(tmp_path: Path) -> None:
    shared = tmp_path / "dictionary"
    shared.mkdir()
    (shared / "words.txt").write_text("apple\n")
    limits = Limits(read_only_paths=(str(shared),))
    stage_specs = stages(run=f"cat {shared}/words.txt; touch {shared}/mine")
    outcome = run_submission(make_spec(tmp_path, stage_specs=stage_specs, limits=limits))
    assert text(outcome, "stage_run_output") == "apple\n"
    assert "Read-only file system" in text(outcome, "stage_run_error")


def test_stages_out_of_order_are_a_project_error(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, stage_specs=(StageSpec("run", "true"),))
    outcome = run_submission(spec)
    assert outcome.status == StatusCode.PROJECT_ERROR
    assert "expected init, build, run, test, post" in text(outcome, "debug_log")


@pytest.mark.sandbox
def test_a_read_only_path_that_is_a_link_is_not_mounted_from_the_host(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, project={"data/real.txt": "r"}, stage_specs=stages(run="ls shared"),
                     read_only=("shared",))  # fmt: skip
    (spec.project_dir / "shared").symlink_to("/etc")
    outcome = run_submission(spec)
    assert "shadow" not in text(outcome, "stage_run_output")
    assert outcome.status == StatusCode.OK


# The built-in evaluate, run by the engine itself ---------------------------------------------

HALF = {"solution.py": "def add(a, b):\n    return a + b if a > 0 else 0\n"}


@pytest.mark.sandbox
@pytest.mark.parametrize("solution", [GOOD, HALF, {"solution.py": "syntax error("}])
def test_the_built_in_evaluate_gives_what_the_sandboxed_command_gives(
    tmp_path: Path, solution: dict[str, str]
) -> None:
    outcomes = []
    # exactly the command: the engine evaluates; with a no-op after it: the sandbox does
    for index, test in enumerate(["se_utils_cli   evaluate", "se_utils_cli evaluate; true"]):
        spec = make_spec(
            tmp_path,
            name=f"sub{index}",
            project=PROJECT,
            upload=solution,
            stage_specs=stages(run=PYTEST_RUN, test=test),
            read_only=(".sphere-engine",),
        )
        outcomes.append(run_submission(spec))
    here, boxed = outcomes
    assert "stage test: exit code 0" in text(here, "debug_log")
    assert "(run by the engine)" in text(here, "debug_log")
    assert "(run by the engine)" not in text(boxed, "debug_log")
    assert (here.status, here.score) == (boxed.status, boxed.score)
    timeless = [[{k: v for k, v in c.items() if k != "time"} for c in report(o)] for o in outcomes]
    assert timeless[0] == timeless[1]
    assert text(here, "stage_test_output") == text(boxed, "stage_test_output")


@pytest.mark.sandbox
def test_the_engine_evaluating_writes_files_the_post_stage_may_change_and_follows_no_link(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    xml = (
        '<testsuite><testcase name="test_a"/>'
        '<testcase name="test_b"><failure/></testcase></testsuite>'
    )
    plant = (
        f"echo '{xml}' > \"$SE_PATH_UNIT_TESTS_REPORT\"; "
        f'ln -s {victim} "$SE_PATH_SCENARIO_RESULT"; '
        # the name the engine (this process) writes the result under before renaming it
        f'ln -s {victim} "$SE_PATH_SCENARIO_RESULT.tmp{os.getpid()}"; '
        f'ln -s {victim} "$SE_PATH_FINAL_TESTS_REPORT"'
    )
    spec = make_spec(
        tmp_path,
        stage_specs=stages(
            run=plant, test="se_utils_cli evaluate", post="se_utils_cli scenario_result status OK"
        ),
    )
    outcome = run_submission(spec)
    assert "(run by the engine)" in text(outcome, "debug_log")
    assert victim.read_text() == "host file\n"  # the links were replaced, not written through
    assert [case["status"] for case in report(outcome)] == ["ok", "failure"]
    assert (outcome.status, outcome.score) == (StatusCode.OK, 50.0)  # the post stage's word
