"""Containers API v1.1 client: models, retries, rate limit, batch polling, slot gate."""

from __future__ import annotations

from grader.api.client import ClientCounters, ClientSettings, ContainersClient
from grader.api.follow import ExecutionGate, SubmissionWatcher
from grader.api.models import STAGES, Result, SlotStats, Stage, Status, StreamRef, Submission

__all__ = [
    "STAGES",
    "ClientCounters",
    "ClientSettings",
    "ContainersClient",
    "ExecutionGate",
    "Result",
    "SlotStats",
    "Stage",
    "Status",
    "StreamRef",
    "Submission",
    "SubmissionWatcher",
]
