"""Which engine a command talks to, and opening a client to it.

Selection (DESIGN.md): ``--engine URL`` > ``SPHERE_ENGINE_URL`` > course config > the
in-process local engine. Token: ``SPHERE_ENGINE_TOKEN`` > the variable named by the
config's ``token_env``. The in-process engine gets a fresh random token each time.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from grader.api.client import (
    IN_PROCESS_HOST,
    ClientSettings,
    ContainersClient,
    is_on_this_machine,
)
from grader.config import DEFAULT_REQUESTS_PER_SECOND, DEFAULT_TOKEN_ENV, Course
from grader.errors import ConfigError

LOCAL_ENGINE = "local"
LOCAL_BASE_URL = f"http://{IN_PROCESS_HOST}/api/v1"
URL_ENV = "SPHERE_ENGINE_URL"


@dataclass(frozen=True)
class EngineChoice:
    """Where submissions go. ``url is None``: the in-process local engine."""

    url: str | None
    token: str = field(repr=False)
    label: str  # stored in SQLite to key submissions; never carries the token
    projects_dir: Path
    data_dir: Path
    slots: int | None = None

    @property
    def is_local(self) -> bool:
        return self.url is None

    def __repr__(self) -> str:
        return f"EngineChoice(label={self.label!r}, token='***')"


def choose_engine(
    course: Course, *, url: str | None = None, environ: Mapping[str, str] | None = None
) -> EngineChoice:
    """Resolve the engine and token for a course, or raise ConfigError saying what is missing."""
    env = os.environ if environ is None else environ
    chosen = url or env.get(URL_ENV) or course.engine.url
    data_dir = course.state_dir / "engine"
    if not chosen:
        return EngineChoice(
            url=None,
            token=secrets.token_urlsafe(24),
            label=LOCAL_ENGINE,
            projects_dir=course.projects_dir,
            data_dir=data_dir,
            slots=course.engine.slots,
        )
    chosen = chosen.rstrip("/")
    if not re.match(r"https?://", chosen):
        origin = "--engine" if url else URL_ENV if env.get(URL_ENV) else "engine.url"
        raise ConfigError(
            f"engine address {chosen!r} ({origin}) must start with http:// or https://",
            file=str(course.root / "course.toml") if origin == "engine.url" else None,
        )
    token = env.get(DEFAULT_TOKEN_ENV) or env.get(course.engine.token_env)
    if not token:
        names = dict.fromkeys((DEFAULT_TOKEN_ENV, course.engine.token_env))
        raise ConfigError(
            f"engine {chosen} needs an access token: set {' or '.join(names)}",
            file=str(course.root / "course.toml"),
            where="engine.token_env",
        )
    return EngineChoice(chosen, token, chosen, course.projects_dir, data_dir)


UNLIMITED_RATE = 1000.0  # requests per second to an engine on this machine: no real limit


def requests_per_second(choice: EngineChoice, course: Course) -> float:
    """The configured rate; unset, the cloud's polite default, or no limit on this machine."""
    configured = course.engine.requests_per_second
    if configured is not None:
        return configured
    on_this_machine = choice.url is None or is_on_this_machine(choice.url)
    return UNLIMITED_RATE if on_this_machine else DEFAULT_REQUESTS_PER_SECOND


def client_settings(
    choice: EngineChoice, course: Course, *, concurrency: int | None
) -> ClientSettings:
    engine = course.engine
    return ClientSettings(
        base_url=choice.url or LOCAL_BASE_URL,
        token=choice.token,
        requests_per_second=requests_per_second(choice, course),
        concurrency=concurrency or engine.concurrency,
        poll_interval=engine.poll_interval,
        timeout=engine.request_timeout,
        max_attempts=engine.max_attempts,
        backoff_base=engine.backoff_base,
        backoff_cap=engine.backoff_cap,
        deadline=engine.retry_deadline,
    )


@asynccontextmanager
async def open_client(
    choice: EngineChoice, course: Course, *, concurrency: int | None = None
) -> AsyncIterator[ContainersClient]:
    """A client to the chosen engine; starts (and afterwards stops) the in-process one."""
    settings = client_settings(choice, course, concurrency=concurrency)
    if not choice.is_local:
        async with ContainersClient(settings) as client:
            yield client
        return
    from grader.engine import EngineConfig, inprocess_engine  # heavy: only when used

    config = EngineConfig(
        projects_dir=choice.projects_dir,
        data_dir=choice.data_dir,
        token=choice.token,
        slots=choice.slots,
        base_url=LOCAL_BASE_URL,
    )
    async with (
        inprocess_engine(config) as transport,
        ContainersClient(settings, transport=transport) as client,
    ):
        yield client
