"""The local engine: the Containers API v1.1 served in-process or over a socket.

``EngineConfig`` describes one engine; ``create_app`` (``app.py``) builds its ASGI app;
``serve`` (``serve.py``) hands the app to uvicorn; ``inprocess_engine`` runs the app in
this process and yields an httpx transport to it. ``detect_sandbox`` comes from the
sandbox module, imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from grader.engine.settings import EngineConfig

if TYPE_CHECKING:
    import httpx

    from grader.engine.service import Clock, RunFunction

__all__ = ["EngineConfig", "detect_sandbox", "inprocess_engine"]


@asynccontextmanager
async def inprocess_engine(
    config: EngineConfig, *, runner: RunFunction | None = None, clock: Clock | None = None
) -> AsyncIterator[httpx.AsyncBaseTransport]:
    """The engine's app started in this process; yields a transport for httpx clients.

    ASGITransport does not run the app's lifespan, so it is entered here: on exit,
    running submissions are cancelled and the engine's threads are released.
    """
    import httpx

    from grader.engine.app import create_app

    app = create_app(config, runner=runner, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        try:
            yield transport
        finally:
            await transport.aclose()


def __getattr__(name: str) -> Any:
    # The sandbox module belongs to the runner's side and imports a good deal; load it
    # only for callers that ask (``grader doctor``).
    if name == "detect_sandbox":
        return importlib.import_module("grader.engine.sandbox").detect_sandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
