"""How the local engine decides a result (platform-notes.md), as pure functions.

A stage's end can decide by itself (time limit, signal, build error); otherwise the test
or post stage's explicit result (``se_utils_cli``) or tests report decides; otherwise the
stages' exit codes do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grader.api.models import StatusCode
from grader.engine import evaluate
from grader.engine.sandbox import StageExit


@dataclass(frozen=True)
class Evaluation:
    """A result the test or post stage set: a status code, a score, why (if it failed)."""

    stage: str
    status: int
    score: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The decided result: status, score, signal, and the stage that decided it (if one)."""

    status: int
    score: float | None = None
    signal: int | None = None
    stage: str | None = None


def engine_failure(name: str, exit: StageExit) -> Verdict | None:
    """What a stage's end decides by itself (13, 12 or 11), before any evaluation."""
    if exit.timed_out:
        return Verdict(StatusCode.TIME_LIMIT, stage=name)
    if exit.signal is not None:
        return Verdict(StatusCode.RUNTIME_ERROR, signal=exit.signal, stage=name)
    if name == "build" and exit.exit_code != 0:
        return Verdict(StatusCode.BUILD_ERROR, stage=name)
    return None


def skips(name: str, failure: Verdict | None) -> bool:
    """After a failure only post runs; a build error skips run and test (init never fails)."""
    return failure is not None and name != "post"


def decide(
    ran: Sequence[tuple[str, StageExit]], failure: Verdict | None, evaluation: Evaluation | None
) -> Verdict:
    """The submission's status from what ran, the first engine-seen failure and evaluation.

    A failure the engine saw (time limit, signal, build error) stands even if post later
    states a result: the student's program did fail. Otherwise the last explicit result
    wins; with none, 15 if every stage exited 0 (the run stage's exit code alone, failing
    tests, does not count), else 12.
    """
    if failure is not None:
        return failure
    if evaluation is not None:
        return Verdict(evaluation.status, evaluation.score, stage=evaluation.stage)
    failed = [name for name, exit in ran if name != "run" and exit.exit_code != 0]
    return Verdict(
        StatusCode.RUNTIME_ERROR if failed else StatusCode.OK, stage=failed[0] if failed else None
    )


def evaluation_from(
    stage: str, result: dict[str, Any] | None, report: list[dict[str, Any]] | None
) -> Evaluation | None:
    """The evaluation a test/post stage left: its explicit result, else its report's."""
    if result is not None:
        code = evaluate.STATUS_CODES[result["status"]]
        return Evaluation(stage, code, result.get("score"), result.get("reason"))
    if report is not None:
        summary = evaluate.summarize(report)
        return Evaluation(stage, evaluate.STATUS_CODES[summary["status"]], summary["score"])
    return None


def validate_result(data: bytes) -> dict[str, Any]:
    """The scenario result file as a checked dict; ``ValueError`` saying what is wrong."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("the scenario result is not a JSON object")
    status = value.get("status")
    if status not in evaluate.STATUS_CODES:
        raise ValueError(f"the scenario result's status {status!r} is not one of BE|RE|TLE|FAIL|OK")
    score = value.get("score")
    if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)):
        raise ValueError("the scenario result's score is not a number")
    if score is not None and not (0 <= score < float("inf")):
        raise ValueError("the scenario result's score is not a finite number >= 0")
    reason = value.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("the scenario result's reason is not a string")
    return {
        "status": status,
        "score": None if score is None else float(score),
        "reason": None if reason is None else reason[:1000],
    }
