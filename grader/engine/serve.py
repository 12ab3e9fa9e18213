"""Serve the local engine over a socket: build the app, then hand it to uvicorn."""

from __future__ import annotations

import copy
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from grader.engine.app import create_app
from grader.engine.settings import EngineConfig

GRACEFUL_SECONDS = 10


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the engine's own loggers on the same handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["grader"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(config: EngineConfig, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``config``'s engine on ``host:port`` until SIGINT or SIGTERM.

    uvicorn's own access log is off: it prints query strings, and the documented way
    to send the token is in the query. The app logs method, path and status instead.
    """
    app = create_app(config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        lifespan="on",
        log_config=log_config(),
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
