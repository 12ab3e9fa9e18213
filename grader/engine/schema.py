"""Pydantic models of the API's answers, for the published OpenAPI document.

Routes build their JSON in ``views.py`` and return it directly; these models describe
the same shapes so the document can be read, and fuzzed against.
"""

from __future__ import annotations

from pydantic import BaseModel


class ErrorBody(BaseModel):
    message: str
    error_code: int


class TestAnswer(BaseModel):
    __test__ = False  # not a pytest class

    message: str


class SlotCounts(BaseModel):
    all: int
    free: int


class StatsAnswer(BaseModel):
    workspace_slots: SlotCounts


class ProjectRef(BaseModel):
    id: str
    name: str
    config: str | None = None


class CodeAndName(BaseModel):
    code: int
    name: str


class WorkspaceModel(BaseModel):
    id: str
    project: ProjectRef
    created_at: str
    terminated_at: str | None
    last_usage: str | None
    lifetime: int
    state: CodeAndName
    workspace_url: str


class Paging(BaseModel):
    previous_page_token: str | None
    next_page_token: str | None


class WorkspaceList(BaseModel):
    items: list[WorkspaceModel]
    paging: Paging


class WorkspaceCreated(BaseModel):
    message: str
    workspace: WorkspaceModel


class ResultModel(BaseModel):
    status: CodeAndName
    score: float | None
    time: float
    memory: int
    signal: int


class StreamRefModel(BaseModel):
    size: int
    uri: str


class StageModel(BaseModel):
    time: float
    skipped: bool
    exit_code: int | None
    signal: int | None
    status_changed_to: int | None


class SubmissionModel(BaseModel):
    id: int
    executing: bool
    date: str
    project: ProjectRef
    scenario: str | None
    result: ResultModel
    streams: dict[str, StreamRefModel | None]
    stages: dict[str, StageModel]
    uri: str


class SubmissionList(BaseModel):
    items: list[SubmissionModel]
    paging: Paging


class SubmissionCreated(BaseModel):
    message: str
    id: int
