"""`grader check`'s verdicts, on plain values."""

from __future__ import annotations

from grader.checks import Limits, SolutionRun, TestRun, judge_flaky, judge_score, judge_times


def run(score: float, *tests: tuple[str, str, float], graded: bool = True) -> SolutionRun:
    return SolutionRun(
        graded, score if graded else None, "ok", "", tuple(TestRun(*t) for t in tests)
    )


def test_every_run_must_get_the_expected_score() -> None:
    good = run(10, ("t1", "ok", 0.1))
    bad = run(7, ("t1", "ok", 0.1), ("t2", "failure", 0.2))
    assert judge_score("reference", [good, good], 10).ok
    found = judge_score("reference", [good, bad], 10)
    assert not found.ok and "1 of 2 runs got another score: 7" in found.detail
    assert "not passing: t2" in found.detail
    missing = judge_score("starter", [run(0, graded=False)], 0)
    assert not missing.ok and missing.detail.startswith("not graded")


def test_a_test_whose_result_changes_between_runs_is_flaky() -> None:
    one = run(10, ("t1", "ok", 0.1), ("t2", "ok", 0.1))
    two = run(7, ("t1", "ok", 0.1), ("t2", "failure", 0.1))
    assert judge_flaky("reference", [one, one]).ok
    flaky = judge_flaky("reference", [one, two])
    assert not flaky.ok and flaky.detail == "flaky: t2"
    assert judge_flaky("reference", [one]).ok  # one run says nothing


def test_a_test_close_to_its_limit_or_a_slow_stage_fails_the_check() -> None:
    runs = [run(10, ("quick", "ok", 0.2), ("slow", "ok", 1.6))]
    found = judge_times("reference", runs, Limits(test_seconds=3, stage_seconds=20))
    assert [f.ok for f in found] == [False, True]
    assert "slowest slow: 1.60 s" in found[0].detail and "limit: slow" in found[0].detail
    assert judge_times("reference", runs, Limits(test_seconds=10, stage_seconds=3))[1].ok is False
    assert judge_times("reference", runs, Limits()) == []
