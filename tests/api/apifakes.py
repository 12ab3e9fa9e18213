"""Scripted engines for httpx.MockTransport, and a recorded sleep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from grader.api.client import ClientSettings, ContainersClient

TOKEN = "tok-SECRET-4f9a2b"
BASE = "https://acme.containers.sphere-engine.com/api/v1"

Step = Callable[[httpx.Request], httpx.Response]


class Sleeps:
    """An injected sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def ok_json(data: Any, status: int = 200) -> Step:
    return lambda request: httpx.Response(status, json=data)


def raise_(exc: type[httpx.TransportError]) -> Step:
    def step(request: httpx.Request) -> httpx.Response:
        raise exc("boom " + str(request.url), request=request)

    return step


class Script:
    """Answers requests with scripted steps in order; records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.steps.pop(0)(request)


def make_client(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: Sleeps, **settings: Any
) -> ContainersClient:
    opts: dict[str, Any] = {"requests_per_second": 1000.0, **settings}
    return ContainersClient(
        ClientSettings(BASE, TOKEN, **opts), transport=httpx.MockTransport(handler), sleep=sleeps
    )
