"""How long the grader follows one submission before it counts as an engine failure.

A submission's stages each have a timeout (``projects/<id>/config.json``, the same file
the cloud service runs), so an engine that works ends every submission within their
sum. The grader waits that long plus ``[engine] submission_margin`` (queueing, start-up,
polling); past it the submission is an engine failure: retried, then "not graded",
never a zero, and the run goes on. ``[engine] submission_timeout``, when set, replaces
the derived deadline; a project without a readable ``config.json`` here (one that only
exists on the service) gets ``DEFAULT_SUBMISSION_TIMEOUT``.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta

from grader.config import DEFAULT_SUBMISSION_TIMEOUT, EngineSettings

STAGES = ("init", "build", "run", "test", "post")
DEFAULT_STAGE_SECONDS = 60.0  # a stage without a timeout (the local engine's default)


def stage_limits(config_text: str | None, scenario: str | None) -> dict[str, float]:
    """Each stage's timeout in seconds for ``scenario`` (its default one when None); empty
    when the text is no usable project config."""
    if config_text is None:
        return {}
    try:
        config = json.loads(config_text)
        scenarios = config["scenarios"]
        name = scenario or next(n for n, body in scenarios.items() if body.get("default"))
        stages = scenarios[name].get("stages", {})
        limits = {}
        for stage in STAGES:
            body = stages.get(stage) or {}
            timeout = body.get("timeout", DEFAULT_STAGE_SECONDS)
            if body.get("command") and not body.get("skip") and _is_seconds(timeout):
                limits[stage] = float(timeout)
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return {}
    return limits


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def stage_seconds(config_text: str, scenario: str | None) -> float | None:
    """The sum of the timeouts of the stages ``scenario`` runs (its default one when
    None); None when the text is no usable project config."""
    try:
        config = json.loads(config_text)
        scenarios = config["scenarios"]
        name = scenario or next(n for n, body in scenarios.items() if body.get("default"))
        stages = scenarios[name].get("stages", {})
        total = 0.0
        for stage in STAGES:
            body = stages.get(stage) or {}
            if body.get("command") and not body.get("skip"):
                timeout = body.get("timeout", DEFAULT_STAGE_SECONDS)
                if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                    return None
                total += float(timeout)
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return None
    return total if math.isfinite(total) else None


def follow_deadline(
    stages: float | None, *, margin: timedelta, configured: timedelta | None
) -> timedelta:
    """How long to follow one submission: ``configured`` when set, else the stages'
    timeouts plus ``margin``, else the default."""
    if configured is not None:
        return configured
    if stages is None:
        return DEFAULT_SUBMISSION_TIMEOUT
    return timedelta(seconds=stages) + margin


def deadline_for(
    engine: EngineSettings, scenario: str | None, config_text: str | None
) -> timedelta:
    """``follow_deadline`` for one assignment: its scenario of the project's config
    (``None``: no readable ``config.json`` on this machine) under the course's settings."""
    stages = stage_seconds(config_text, scenario) if config_text is not None else None
    return follow_deadline(
        stages, margin=engine.submission_margin, configured=engine.submission_timeout
    )
