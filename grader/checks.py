"""`grader check`'s verdicts on an assignment before it is released. Pure.

The driver (``grader.checking``) grades the instructor's reference solution and starter
code ``runs`` times each; these functions judge what came back, as plain values:

* every run of the reference gets ``max_points``, every run of the starter gets
  ``starter_score`` (0 unless the course says otherwise);
* a test whose result differs between runs of the same code is flaky;
* a test that takes more than ``SLOW_SHARE`` of its time limit (the harness's per-test
  limit, ``grader_test_timeout``) is too close to it: on a busy machine it would fail,
  and so is a run stage whose tests take more than that share of the stage's timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SLOW_SHARE = 0.5


@dataclass(frozen=True)
class TestRun:
    """One test in one run: its name, status and seconds."""

    __test__ = False  # not a pytest class, despite the name

    name: str
    status: str
    seconds: float


@dataclass(frozen=True)
class SolutionRun:
    """One grading of one solution: graded or not, its score and outcome, its tests."""

    graded: bool
    score: float | None
    outcome: str
    reason: str
    tests: tuple[TestRun, ...]


@dataclass(frozen=True)
class Finding:
    """One thing `grader check` checked: whether it holds, and what it found."""

    ok: bool
    what: str
    detail: str


@dataclass(frozen=True)
class Limits:
    """The limits a test and the run stage have (None: unknown here)."""

    test_seconds: float | None = None
    stage_seconds: float | None = None


def judge_score(label: str, runs: Sequence[SolutionRun], expected: float) -> Finding:
    """Every run of one solution got the expected score."""
    wrong = [run for run in runs if not run.graded or run.score != expected]
    what = f"{label} gets {expected:g}"
    if not wrong:
        return Finding(True, what, f"{len(runs)} of {len(runs)} runs got {expected:g}")
    run = wrong[0]
    if not run.graded:
        return Finding(False, what, f"not graded: {run.outcome}: {run.reason}")
    failing = [t.name for t in run.tests if t.status != "ok"]
    shown = ", ".join(failing[:8]) + (", ..." if len(failing) > 8 else "")
    detail = f"{len(wrong)} of {len(runs)} runs got another score: {run.score:g} ({run.outcome})"
    return Finding(False, what, f"{detail}; not passing: {shown}" if failing else detail)


def judge_flaky(label: str, runs: Sequence[SolutionRun]) -> Finding:
    """No test changes its result between runs of the same code."""
    seen: dict[str, set[str]] = {}
    for run in runs:
        for test in run.tests:
            seen.setdefault(test.name, set()).add(test.status)
    flaky = sorted(name for name, statuses in seen.items() if len(statuses) > 1)
    what = f"{label}: the same result in every run"
    if len(runs) < 2:
        return Finding(True, what, "one run (use --runs N to look for flaky tests)")
    if flaky:
        return Finding(False, what, f"flaky: {', '.join(flaky)}")
    return Finding(True, what, f"{len(seen)} tests, {len(runs)} runs, no test changed")


def judge_times(label: str, runs: Sequence[SolutionRun], limits: Limits) -> list[Finding]:
    """The slowest test against its limit, the tests in all against the stage's timeout."""
    slowest: dict[str, float] = {}
    for run in runs:
        for test in run.tests:
            slowest[test.name] = max(slowest.get(test.name, 0.0), test.seconds)
    findings = []
    if slowest and limits.test_seconds:
        name, seconds = max(slowest.items(), key=lambda item: (item[1], item[0]))
        close = sorted(n for n, s in slowest.items() if s > SLOW_SHARE * limits.test_seconds)
        what = f"{label}: each test well within its {limits.test_seconds:g} s limit"
        detail = f"slowest {name}: {seconds:.2f} s"
        if close:
            detail += f"; over {SLOW_SHARE:.0%} of the limit: {', '.join(close)}"
        findings.append(Finding(not close, what, detail))
    if runs and limits.stage_seconds:
        total = max(sum(t.seconds for t in run.tests) for run in runs)
        what = f"{label}: the tests well within the run stage's {limits.stage_seconds:g} s"
        ok = total <= SLOW_SHARE * limits.stage_seconds
        findings.append(Finding(ok, what, f"{total:.2f} s in all (slowest run)"))
    return findings
