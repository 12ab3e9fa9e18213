"""Authentication and the access log, as ASGI middleware around the whole app.

The token is accepted as the documented ``access_token`` query parameter or as
``Authorization: Bearer``, compared in constant time, and never logged: log lines carry
the method and path, never the query string.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grader.engine.views import error_json

log = logging.getLogger("grader.engine.http")

PROTECTED = ("/api/v1/", "/workspace/")
"""Path prefixes that need the token: the API and the workspace pages."""


class TokenGuard:
    """ASGI middleware: 401 / 1 unless the request carries the token; logs each request.

    The log line has the method, path (never the query, which may hold the token),
    status and duration.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if str(scope["path"]).startswith(PROTECTED) and not self._authorized(scope):
                body = error_json("unauthorized access", 1)
                await JSONResponse(body, status_code=401)(scope, receive, send_logged)
            else:
                await self.app(scope, receive, send_logged)
        finally:
            log.info(
                "%s %s %d %.1fms",
                scope.get("method"),
                scope.get("path"),
                status,
                (time.perf_counter() - started) * 1000,
            )

    def _authorized(self, scope: Scope) -> bool:
        given = _query_token(bytes(scope.get("query_string", b"")))
        if given is None:
            given = _bearer_token(scope.get("headers", []))
        return given is not None and hmac.compare_digest(given, self._token)


def _query_token(query: bytes) -> bytes | None:
    for key, value in parse_qsl(
        query.decode("latin-1"), keep_blank_values=True, encoding="latin-1"
    ):
        if key == "access_token":
            return value.encode("latin-1")  # latin-1 both ways: the raw bytes sent
    return None


def _bearer_token(headers: Any) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            raw = bytes(value)
            return raw[7:].strip() if raw[:7].lower() == b"bearer " else None
    return None
