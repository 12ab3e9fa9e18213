"""Workspaces: documented states, slots while running, expiry by an injected clock.

The life of a workspace is a pure function of its record and the time (``advance``):
1 starting -> 2 running at the next look, 2 -> 4 removed once ``lifetime`` minutes pass
after its last use (or creation). The engine stopping moves running ones to 3 stopped; a
project whose config.json is broken gives 5 error. ``Workspaces`` applies that policy to
the stored records and keeps the slot count in step.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from grader.api.models import WORKSPACE_STATES
from grader.engine.projects import find_project, parse_config
from grader.engine.scheduler import Slots
from grader.engine.store import Store, WorkspaceRecord
from grader.errors import ConfigError, InvalidRequestError, NotFoundError, WorkspaceLimitError

STARTING, RUNNING, STOPPED, REMOVED, ERROR = 1, 2, 3, 4, 5
STATE_NAMES = WORKSPACE_STATES  # one table of names, shared with the client
ACTIVE = (STARTING, RUNNING)
MAX_PAGE = 30
MAX_OFFSET = 10**9

Clock = Callable[[], datetime]


def expires_at(workspace: WorkspaceRecord) -> datetime:
    """When a running workspace is removed unless used again."""
    return (workspace.last_usage or workspace.created_at) + timedelta(minutes=workspace.lifetime)


def advance(workspace: WorkspaceRecord, now: datetime) -> WorkspaceRecord:
    """The workspace's state at ``now``: starting becomes running; running expires."""
    if workspace.state == STARTING:
        workspace = replace(workspace, state=RUNNING)
    if workspace.state == RUNNING and now >= expires_at(workspace):
        workspace = replace(workspace, state=REMOVED, terminated_at=expires_at(workspace))
    return workspace


def encode_page_token(offset: int) -> str:
    """The documented example's token shape: base64 of the offset (``MTA=`` is 10)."""
    return base64.b64encode(str(offset).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset a page token stands for; a token we did not issue is 400 / 10."""
    if not token:
        return 0
    try:
        text = base64.b64decode(token.encode("ascii"), validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequestError("invalid request data: page_token is not a valid token") from None
    if not text.isdigit() or int(text) > MAX_OFFSET:
        raise InvalidRequestError("invalid request data: page_token is not a valid token")
    return int(text)


@dataclass(frozen=True)
class WorkspacePage:
    items: tuple[WorkspaceRecord, ...]
    previous_page_token: str | None
    next_page_token: str | None


class Workspaces:
    """Stored workspaces kept in step with the clock and the slot count."""

    def __init__(
        self, store: Store, slots: Slots, clock: Clock, projects_dir: Path, lifetime: int
    ) -> None:
        self.store = store
        self.slots = slots
        self.clock = clock
        self.projects_dir = projects_dir
        self.lifetime = lifetime

    def recover(self) -> None:
        """After a restart nothing runs: workspaces left active are stopped."""
        now = self.clock()
        active, _ = self.store.workspaces(states=ACTIVE)
        for workspace in active:
            self.store.update_workspace(replace(workspace, state=STOPPED, terminated_at=now))

    def sweep(self) -> int:
        """Apply the clock to every active workspace; returns how many slots were freed."""
        now = self.clock()
        freed = 0
        active, _ = self.store.workspaces(states=ACTIVE)
        for workspace in active:
            later = advance(workspace, now)
            if later != workspace:
                self.store.update_workspace(later)
                if later.state not in ACTIVE:
                    self.slots.release()
                    freed += 1
        return freed

    def create(self, project_id: str, project_config: str | None) -> WorkspaceRecord:
        """A new workspace (starting), holding a slot; 409 / 200611 when none is free."""
        project = find_project(self.projects_dir, project_id)
        if project_config is not None:
            _check_override(project_config)
        config = project_config if project_config is not None else project.config_text
        now = self.clock()
        workspace = WorkspaceRecord(
            id=secrets.token_hex(16),
            project_id=project.id,
            config=config or "",
            state=STARTING,
            created_at=now,
            lifetime=self.lifetime,
        )
        if config is None or not _config_usable(config, project.id):
            # The project cannot start: an error workspace, holding nothing.
            workspace = replace(workspace, state=ERROR, terminated_at=now)
        elif not self.slots.try_take():
            raise WorkspaceLimitError(
                f"the maximum number of workspaces has been reached: all {self.slots.total} "
                "slots are in use"
            )
        self.store.add_workspace(workspace)
        return workspace

    def get(self, workspace_id: str) -> WorkspaceRecord:
        workspace = self.store.get_workspace(workspace_id)
        if workspace is None:
            raise NotFoundError(f"workspace {workspace_id[:64]!r} not found")
        return workspace

    def touch(self, workspace_id: str) -> WorkspaceRecord:
        """Record a use of a running workspace (it then lives ``lifetime`` more minutes)."""
        workspace = self.get(workspace_id)
        if workspace.state == RUNNING:
            workspace = replace(workspace, last_usage=self.clock())
            self.store.update_workspace(workspace)
        return workspace

    def page(
        self, *, project_id: str | None, states: Sequence[int], limit: int, page_token: str | None
    ) -> WorkspacePage:
        offset = decode_page_token(page_token)
        items, total = self.store.workspaces(
            project_id=project_id, states=states, offset=offset, limit=limit
        )
        previous = encode_page_token(max(0, offset - limit)) if offset > 0 else None
        following = encode_page_token(offset + limit) if offset + limit < total else None
        return WorkspacePage(tuple(items), previous, following)


def _check_override(text: str) -> None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"invalid request data: project_config is not JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError("invalid request data: project_config must be a JSON object")


def _config_usable(text: str, project_id: str) -> bool:
    try:
        parse_config(text, source=f"{project_id}/config.json")
    except ConfigError:
        return False
    return True
