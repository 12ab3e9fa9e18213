"""What a fault means: whether it passes, and whether a create may have happened anyway.

One vocabulary for the client's retry loop, the submission watcher and the pipeline.
"""

from __future__ import annotations

import httpx

from grader.errors import (
    ApiError,
    ProjectUnavailableError,
    RateLimitedError,
    ServerError,
    TransportError,
)


def is_transient(exc: BaseException, *, polling: bool) -> bool:
    """A fault of the engine or of the way to it, not of what was asked: it may pass.

    Transport failures (ours or a raw httpx one), 5xx and 429 always pass; 400, 401 and
    404 never do (asking again gives the same answer). A project that is temporarily
    unavailable (409/200510) is the answer to a create and passes for the call that met
    it, but ``polling`` (the watcher's rounds and its ``/stats`` readings) counts only the
    faults that say nothing about the submissions being followed.
    """
    if isinstance(exc, TransportError | httpx.TransportError | ServerError | RateLimitedError):
        return True
    return not polling and isinstance(exc, ProjectUnavailableError)


AMBIGUOUS_STATUSES = frozenset({500, 502, 504})
"""Answers after which a create may have happened: the engine failed mid-way (500), or a
gateway in front of it lost or gave up on its answer (502, 504). A 503 means the request
was turned away before any work, so it is not counted."""


def is_ambiguous(exc: BaseException) -> bool:
    """The request may have reached the engine and been acted on; we cannot tell."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False  # nothing was sent
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ApiError) and exc.http_status in AMBIGUOUS_STATUSES
