"""Which faults pass: one predicate, the same answers every call site gave before it."""

from __future__ import annotations

import httpx
import pytest

from grader.api.faults import is_transient
from grader.errors import (
    API_ERRORS,
    ApiError,
    EngineError,
    RateLimitedError,
    ServerError,
    SubmissionTimeoutError,
    TransportError,
)

_REQUEST = httpx.Request("GET", "http://engine.test/api/v1/test")

# The answers the three predicates this one replaced gave (pinned before the change):
# (error, the client's retry loop, the watcher's polls and /stats, the pipeline's attempts)
KINDS: list[tuple[BaseException, bool, bool, bool]] = [
    (TransportError("GET /test: ConnectError"), True, True, True),
    (ServerError("boom", http_status=500), True, True, True),
    (ServerError("bad gateway", http_status=502), True, True, True),
    (ServerError("unavailable", http_status=503), True, True, True),
    (ServerError("gateway timeout", http_status=504), True, True, True),
    (RateLimitedError("slow down"), True, True, True),
    (ApiError("teapot", http_status=418), False, False, False),
    (SubmissionTimeoutError("not final", submission_id=7), False, False, False),
    (EngineError("something else"), False, False, False),
    *[
        (
            cls("documented"),
            cls.__name__ == "ProjectUnavailableError",
            False,
            cls.__name__ == "ProjectUnavailableError",
        )
        for cls in API_ERRORS
    ],
]
RAW = [
    httpx.ConnectError("refused", request=_REQUEST),
    httpx.ReadTimeout("slow", request=_REQUEST),
    httpx.RemoteProtocolError("cut", request=_REQUEST),
]


def _name(error: BaseException) -> str:
    return f"{type(error).__name__}-{getattr(error, 'http_status', '')}"


@pytest.mark.parametrize(("error", "retried", "passing", "transient"), KINDS, ids=_name)
def test_each_engine_fault_gets_the_answer_each_call_site_gave(
    error: EngineError, retried: bool, passing: bool, transient: bool
) -> None:
    assert is_transient(error, polling=False) is retried  # every call the client retries
    assert is_transient(error, polling=True) is passing
    assert is_transient(error, polling=False) is transient  # creating and following


@pytest.mark.parametrize("error", RAW, ids=_name)
def test_a_raw_httpx_transport_error_is_retried_by_the_client(error: BaseException) -> None:
    assert is_transient(error, polling=False) is True


def test_errors_outside_the_engine_tree_are_never_retried() -> None:
    for error in (ValueError("x"), OSError("x")):
        assert is_transient(error, polling=False) is False
        assert is_transient(error, polling=True) is False
