"""Typed records of the Containers API v1.1, parsed tolerantly from its JSON.

Two stage naming schemes exist in the public material: the reference's
init/compilation/execution/judge/post and the quickstart's init/build/run/test/post.
Both are read; records always use the canonical (quickstart) names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

STAGES = ("init", "build", "run", "test", "post")
"""Canonical stage names, in execution order."""

STAGE_ALIASES: Mapping[str, str] = {
    "compilation": "build",
    "execution": "run",
    "judge": "test",
}
"""The reference's stage names -> canonical names."""


class StatusCode(IntEnum):
    """Submission (and stage) status codes (platform-notes.md, "Submission status codes").

    Below 10 the submission is on its way; 11-15 are the student's result; 20 and 22 are
    the engine's and the project's faults. Engines may send codes not listed here: records
    keep them as plain ints (``Status.code``).
    """

    WAITING = 0
    PREPARATION = 1
    EXECUTION = 3
    BUILD_ERROR = 11
    RUNTIME_ERROR = 12
    TIME_LIMIT = 13
    FAIL = 14
    OK = 15
    INTERNAL_ERROR = 20
    PROJECT_ERROR = 22


STATUS_NAMES: Mapping[int, str] = {
    StatusCode.WAITING: "waiting",
    StatusCode.PREPARATION: "preparation",
    StatusCode.EXECUTION: "execution",
    StatusCode.BUILD_ERROR: "build error",
    StatusCode.RUNTIME_ERROR: "runtime error",
    StatusCode.TIME_LIMIT: "time limit exceeded",
    StatusCode.FAIL: "fail",
    StatusCode.OK: "ok",
    StatusCode.INTERNAL_ERROR: "internal error",
    StatusCode.PROJECT_ERROR: "project error",
}
"""The documented name of each status code."""

STUDENT_RESULTS = frozenset(
    {
        StatusCode.BUILD_ERROR,
        StatusCode.RUNTIME_ERROR,
        StatusCode.TIME_LIMIT,
        StatusCode.FAIL,
        StatusCode.OK,
    }
)
"""Final codes that are the student's result (a grade), not a fault of the engine or project."""

FINAL_STATUSES = STUDENT_RESULTS | {StatusCode.INTERNAL_ERROR, StatusCode.PROJECT_ERROR}
"""The documented codes an engine finishes a submission with."""

WORKSPACE_STATES: Mapping[int, str] = {
    1: "starting",
    2: "running",
    3: "stopped",
    4: "removed",
    5: "error",
}


def canonical_stage(name: str) -> str:
    """``compilation`` -> ``build`` etc.; canonical and unknown names pass through."""
    return STAGE_ALIASES.get(name, name)


def canonical_stream(name: str) -> str:
    """``stage_compilation_output`` -> ``stage_build_output``; others unchanged."""
    parts = name.split("_")
    if len(parts) == 3 and parts[0] == "stage":
        return f"stage_{canonical_stage(parts[1])}_{parts[2]}"
    return name


@dataclass(frozen=True)
class Status:
    """A submission or stage status; unknown codes are kept with their name."""

    code: int
    name: str

    @property
    def final(self) -> bool:
        """Codes below 10 mean the submission is still on its way."""
        return self.code >= 10


@dataclass(frozen=True)
class Result:
    status: Status
    score: float | None = None
    time: float | None = None
    memory: int | None = None
    signal: int | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    time: float | None = None
    skipped: bool = False
    exit_code: int | None = None
    signal: int | None = None
    status: Status | None = None


@dataclass(frozen=True)
class StreamRef:
    size: int
    uri: str = ""


@dataclass(frozen=True)
class Submission:
    id: int
    executing: bool
    result: Result
    date: datetime | None = None
    project_id: str = ""
    project_name: str = ""
    scenario: str | None = None
    streams: Mapping[str, StreamRef | None] = field(default_factory=dict)
    stages: Mapping[str, Stage] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """True once the engine will not change this submission any more."""
        return self.result.status.final and not self.executing


@dataclass(frozen=True)
class SlotStats:
    all: int
    free: int


@dataclass(frozen=True)
class WorkspaceState:
    code: int
    name: str


@dataclass(frozen=True)
class Workspace:
    id: str
    state: WorkspaceState
    project_id: str = ""
    project_name: str = ""
    project_config: str | None = None
    created_at: datetime | None = None
    terminated_at: datetime | None = None
    last_usage: datetime | None = None
    lifetime: int | None = None
    workspace_url: str = ""


@dataclass(frozen=True)
class WorkspacePage:
    items: tuple[Workspace, ...]
    next_page_token: str | None = None
    previous_page_token: str | None = None


# --- parsing -----------------------------------------------------------------------


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int | None = None) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return default


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


_API_DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\Z", re.ASCII)


def parse_date(value: Any) -> datetime | None:
    """``2021-01-01 14:21:57 +0000`` (the documented form) or ISO 8601; else None."""
    if not isinstance(value, str) or not value:
        return None
    if _API_DATE.match(value):  # the documented form: fromisoformat, 30 times strptime's speed
        try:
            return datetime.fromisoformat(f"{value[:19]}{value[20:]}")
        except ValueError:
            return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_status(raw: Any) -> Status | None:
    """A ``{code, name}`` object; None when there is no usable code."""
    data = _obj(raw)
    code = _int(data.get("code"))
    if code is None:
        return None
    name = _str(data.get("name")) or STATUS_NAMES.get(code, f"status {code}")
    return Status(code, name)


def parse_result(raw: Any) -> Result:
    data = _obj(raw)
    status = parse_status(data.get("status")) or Status(
        StatusCode.WAITING.value, STATUS_NAMES[StatusCode.WAITING]
    )
    return Result(
        status=status,
        score=_float(data.get("score")),
        time=_float(data.get("time")),
        memory=_int(data.get("memory")),
        signal=_int(data.get("signal")),
    )


def parse_stage(name: str, raw: Any) -> Stage:
    data = _obj(raw)
    return Stage(
        name=canonical_stage(name),
        time=_float(data.get("time")),
        skipped=bool(data.get("skipped", False)),
        exit_code=_int(data.get("exit_code")),
        signal=_int(data.get("signal")),
        status=parse_status(data.get("status")),
    )


def parse_stream(raw: Any) -> StreamRef | None:
    data = _obj(raw)
    if not data:
        return None
    return StreamRef(size=_int(data.get("size"), 0) or 0, uri=_str(data.get("uri")))


def parse_submission(raw: Any) -> Submission:
    """A submission object from either documented shape; missing fields get defaults."""
    data = _obj(raw)
    project = _obj(data.get("project"))
    streams = {canonical_stream(k): parse_stream(v) for k, v in _obj(data.get("streams")).items()}
    stages = {canonical_stage(k): parse_stage(k, v) for k, v in _obj(data.get("stages")).items()}
    scenario = data.get("scenario")
    return Submission(
        id=_int(data.get("id"), 0) or 0,
        executing=bool(data.get("executing", False)),
        result=parse_result(data.get("result")),
        date=parse_date(data.get("date")),
        project_id=_str(project.get("id")),
        project_name=_str(project.get("name")),
        scenario=scenario if isinstance(scenario, str) else None,
        streams=streams,
        stages=stages,
    )


def parse_stats(raw: Any) -> SlotStats:
    slots = _obj(_obj(raw).get("workspace_slots"))
    return SlotStats(all=_int(slots.get("all"), 0) or 0, free=_int(slots.get("free"), 0) or 0)


def parse_workspace(raw: Any) -> Workspace:
    """A workspace; the state code may be an int or a string."""
    data = _obj(raw)
    project = _obj(data.get("project"))
    state = _obj(data.get("state"))
    code = _int(state.get("code"), 0) or 0
    config = project.get("config")
    return Workspace(
        id=_str(data.get("id")),
        state=WorkspaceState(code, _str(state.get("name")) or WORKSPACE_STATES.get(code, "")),
        project_id=_str(project.get("id")),
        project_name=_str(project.get("name")),
        project_config=config if isinstance(config, str) else None,
        created_at=parse_date(data.get("created_at")),
        terminated_at=parse_date(data.get("terminated_at")),
        last_usage=parse_date(data.get("last_usage")),
        lifetime=_int(data.get("lifetime")),
        workspace_url=_str(data.get("workspace_url")),
    )


def parse_workspace_page(raw: Any) -> WorkspacePage:
    """The list answer; the pagination object is ``paging`` or ``pagination``."""
    data = _obj(raw)
    paging = _obj(data.get("paging")) or _obj(data.get("pagination"))
    items = data.get("items")
    next_token = paging.get("next_page_token")
    prev_token = paging.get("previous_page_token")
    return WorkspacePage(
        items=tuple(parse_workspace(i) for i in items) if isinstance(items, list) else (),
        next_page_token=next_token if isinstance(next_token, str) else None,
        previous_page_token=prev_token if isinstance(prev_token, str) else None,
    )
