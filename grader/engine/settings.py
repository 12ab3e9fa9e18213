"""The local engine's settings: one frozen value built at the edge and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import ConfigError

DEFAULT_MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # the compressed request body
DEFAULT_MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # the archive's tar stream once decompressed
DEFAULT_MAX_FILES = 10_000  # entries in one archive (files, folders and links)
DEFAULT_MAX_FIELD_BYTES = 1024 * 1024  # one plain form field (project_config is the big one)
DEFAULT_WORKSPACE_LIFETIME_MINUTES = 15  # the documented example's lifetime
DEFAULT_SWEEP_SECONDS = 5.0  # how often expired workspaces are removed without a request
DEFAULT_STOP_SECONDS = 30.0  # how long shutdown waits for cancelled runs to return


@dataclass(frozen=True)
class EngineConfig:
    """Where the local engine reads projects and keeps data, and how much it accepts.

    ``slots=None`` means one slot per CPU. ``base_url`` is the API root clients use
    (``http://host:port/api/v1``); stream and workspace links are built from it.
    """

    projects_dir: Path
    data_dir: Path
    token: str = field(repr=False)
    slots: int | None = None
    base_url: str = "http://127.0.0.1:8080/api/v1"
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    max_files: int = DEFAULT_MAX_FILES
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES
    workspace_lifetime_minutes: int = DEFAULT_WORKSPACE_LIFETIME_MINUTES
    sweep_seconds: float = DEFAULT_SWEEP_SECONDS
    stop_seconds: float = DEFAULT_STOP_SECONDS

    def __post_init__(self) -> None:
        if not self.token:
            raise ConfigError("the engine needs a non-empty access token", where="token")
        for name in ("max_upload_bytes", "max_unpacked_bytes", "max_files", "max_field_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be at least 1, not {getattr(self, name)}", where=name)
        if self.slots is not None and self.slots < 1:
            raise ConfigError(f"must be at least 1, not {self.slots}", where="slots")
        if self.workspace_lifetime_minutes < 1:
            raise ConfigError("must be at least 1 minute", where="workspace_lifetime_minutes")

    def __repr__(self) -> str:
        return (
            f"EngineConfig(projects_dir={str(self.projects_dir)!r}, "
            f"data_dir={str(self.data_dir)!r}, token='***', slots={self.slots}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def slot_count(self) -> int:
        """Executions at once: ``slots`` or the machine's CPU count."""
        return self.slots or os.cpu_count() or 1

    @property
    def api_root(self) -> str:
        """``base_url`` without a trailing slash."""
        return self.base_url.rstrip("/")

    @property
    def site_root(self) -> str:
        """The server root above ``/api/v1``: workspace pages live at ``<root>/workspace/<id>``."""
        root = self.api_root
        suffix = "/api/v1"
        return root[: -len(suffix)] if root.endswith(suffix) else root
