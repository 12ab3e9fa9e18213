"""Stored records -> the API's JSON, field name for field name.

Submissions follow the quickstart's shape (stages init/build/run/test/post; streams
``stage_build_output`` ..., null for absent ones; ``tests_report``); workspaces and stats
follow the reference's examples. Dates are ``yyyy-mm-dd hh:mm:ss +0000`` in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from grader.api.models import STATUS_NAMES
from grader.engine.spec import STAGE_ORDER
from grader.engine.store import SubmissionRecord, WorkspaceRecord
from grader.engine.workspaces import STATE_NAMES, WorkspacePage

STREAM_NAMES: tuple[str, ...] = (
    "source",
    "auxdata",
    "tests_report",
    "debug_log",
    *(f"stage_{stage}_{kind}" for stage in STAGE_ORDER for kind in ("output", "error")),
    "workspace_init_output",
    "workspace_init_error",
)
"""Every stream a submission answers, in the quickstart's order."""

REFERENCE_STAGE_NAMES: Mapping[str, str] = {
    "compilation": "build",
    "execution": "run",
    "judge": "test",
}


def canonical_stream(name: str) -> str | None:
    """A stream name in the quickstart's terms, accepting the reference's; None if unknown."""
    parts = name.split("_")
    if len(parts) == 3 and parts[0] == "stage" and parts[1] in REFERENCE_STAGE_NAMES:
        name = f"stage_{REFERENCE_STAGE_NAMES[parts[1]]}_{parts[2]}"
    return name if name in STREAM_NAMES else None


def api_date(moment: datetime | None) -> str | None:
    """``2021-01-01 10:27:44 +0000``; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def status_json(code: int) -> dict[str, Any]:
    return {"code": code, "name": STATUS_NAMES.get(code, f"status {code}")}


def submission_json(record: SubmissionRecord, api_root: str) -> dict[str, Any]:
    """One submission as ``GET /submissions/:id`` answers it."""
    uri = f"{api_root}/submissions/{record.id}"
    return {
        "id": record.id,
        "executing": record.executing,
        "date": api_date(record.created_at),
        "project": {"id": record.project_id, "name": record.project_id, "config": record.config},
        "scenario": record.scenario or record.requested_scenario,
        "result": {
            "status": status_json(record.status),
            "score": record.score,
            "time": round(record.time, 3),
            "memory": record.memory,
            "signal": record.signal or 0,
        },
        "streams": {
            name: (
                {"size": record.streams[name], "uri": f"{uri}/{name}"}
                if name in record.streams
                else None
            )
            for name in STREAM_NAMES
        },
        "stages": _stages_json(record),
        "uri": uri,
    }


def _stages_json(record: SubmissionRecord) -> dict[str, Any]:
    by_name = {stage.name: stage for stage in record.stages}
    stages = {}
    for name in STAGE_ORDER:
        stage = by_name.get(name)
        stages[name] = {
            "time": round(stage.time, 3) if stage else 0,
            # Until a submission ends no stage has been skipped yet.
            "skipped": stage.skipped if stage else not record.executing,
            "exit_code": stage.exit_code if stage else None,
            "signal": stage.signal if stage else None,
            "status_changed_to": stage.status_changed_to if stage else None,
        }
    return stages


def workspace_json(record: WorkspaceRecord, site_root: str) -> dict[str, Any]:
    """One workspace as ``GET /workspaces/:id`` answers it."""
    return {
        "id": record.id,
        "project": {"id": record.project_id, "name": record.project_id, "config": record.config},
        "created_at": api_date(record.created_at),
        "terminated_at": api_date(record.terminated_at),
        "last_usage": api_date(record.last_usage),
        "lifetime": record.lifetime,
        "state": {"code": record.state, "name": STATE_NAMES.get(record.state, "unknown")},
        "workspace_url": f"{site_root}/workspace/{record.id}",
    }


def workspace_page_json(page: WorkspacePage, site_root: str) -> dict[str, Any]:
    return {
        "items": [workspace_json(item, site_root) for item in page.items],
        "paging": {
            "previous_page_token": page.previous_page_token,
            "next_page_token": page.next_page_token,
        },
    }


def error_json(message: str, error_code: int) -> dict[str, Any]:
    return {"message": message, "error_code": error_code}
