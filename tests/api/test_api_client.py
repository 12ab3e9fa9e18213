"""The client over httpx.MockTransport: retries, waits, error classes, streams, tokens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from grader.api.client import ContainersClient
from grader.api.redact import TokenFilter
from grader.errors import (
    API_ERRORS,
    ApiError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from tests.api.apifakes import TOKEN, Script, Sleeps, make_client, ok_json, raise_


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def html_500(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text=f"<html><body>Oops {request.url}</body></html>")


def retry_after(value: str) -> Callable[[httpx.Request], httpx.Response]:
    def step(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value}, json={"message": "slow down"})

    return step


def test_fault_script_ends_in_success_with_expected_attempts_and_waits() -> None:
    script = Script(
        ok_json({"message": "unavailable"}, 503),
        retry_after("7"),
        raise_(httpx.ConnectError),
        raise_(httpx.ReadTimeout),
        lambda r: httpx.Response(200, text="{not json"),
        html_500,
        ok_json({"message": "Submission has been created", "id": 42}, 201),
    )
    sleeps = Sleeps()

    async def go() -> tuple[int, ContainersClient]:
        async with make_client(script, sleeps, max_attempts=10, backoff_base=1.0) as c:
            return await c.create_submission("p", b"tgz", scenario="grade"), c

    sid, client = run(go())
    assert sid == 42 and len(script.requests) == 7
    assert client.counters.retries == 6 and client.counters.requests == 7
    assert sleeps.waits[1] == 7.0  # Retry-After honoured
    # exponential backoff with jitter in [ceiling/2, ceiling], ceiling = 1, 2, 4, 8, 16, 32
    for attempt, wait in enumerate(sleeps.waits, start=1):
        if attempt != 2:
            ceiling = min(30.0, 2.0 ** (attempt - 1))
            assert ceiling / 2 <= wait <= ceiling
    # the read timeout, the unreadable 201 and the 500 may each have created one; the 503,
    # the 429 and the connect error were turned away before any work
    assert client.counters.ambiguous_creates == 3


def test_retry_after_http_date_is_honoured() -> None:
    script = Script(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), ok_json({"message": "hi"}))
    sleeps = Sleeps()

    async def go() -> str:
        async with make_client(script, sleeps) as c:
            return await c.test()

    assert run(go()) == "hi" and sleeps.waits == [0.0]  # a date in the past: no wait


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_never_retried(status: int) -> None:
    script = Script(ok_json({"message": "no", "error_code": 1}, status))
    sleeps = Sleeps()

    async def go() -> None:
        async with make_client(script, sleeps) as c:
            await c.test()

    with pytest.raises(ApiError):
        run(go())
    assert len(script.requests) == 1 and sleeps.waits == []


def test_project_unavailable_409_is_retried() -> None:
    script = Script(
        ok_json({"message": "busy", "error_code": 200510}, 409),
        ok_json({"message": "ok", "workspace": {"id": "w", "state": {"code": "1"}}}, 201),
    )

    async def go() -> str:
        async with make_client(script, Sleeps()) as c:
            return (await c.create_workspace("p")).id

    assert run(go()) == "w" and len(script.requests) == 2


def test_max_attempts_then_transport_error_without_token() -> None:
    script = Script(*[raise_(httpx.ConnectError)] * 3)
    sleeps = Sleeps()

    async def go() -> None:
        async with make_client(script, sleeps, max_attempts=3) as c:
            await c.stats()

    with pytest.raises(TransportError) as info:
        run(go())
    assert len(sleeps.waits) == 2
    assert TOKEN not in str(info.value) and "GET /api/v1/stats" in str(info.value)
    assert info.value.__cause__ is None


def test_overall_deadline_stops_retrying() -> None:
    script = Script(*[retry_after("40")] * 5)
    sleeps = Sleeps()

    async def go() -> None:
        async with make_client(script, sleeps, deadline=100.0) as c:
            await c.stats()

    with pytest.raises(ApiError):
        run(go())
    assert sleeps.waits == [40.0, 40.0]


@pytest.mark.parametrize("cls", API_ERRORS)
def test_each_documented_error_code_maps_to_its_class(cls: type[ApiError]) -> None:
    body = {"message": "documented", "error_code": cls.error_code}
    script = Script(ok_json(body, cls.http_status))

    async def go() -> None:
        async with make_client(script, Sleeps(), max_attempts=1) as c:
            await c.get_submission(5)

    with pytest.raises(cls) as info:
        run(go())
    err = info.value
    assert type(err) is cls and err.method == "GET" and err.path == "/api/v1/submissions/5"
    assert "?" not in str(err) and TOKEN not in repr(err)


def test_html_500_becomes_server_error_with_status_line_only() -> None:
    async def go() -> None:
        async with make_client(Script(html_500), Sleeps(), max_attempts=1) as c:
            await c.stats()

    with pytest.raises(ServerError, match="500 Internal Server Error"):
        run(go())


def test_token_goes_as_access_token_query_parameter() -> None:
    script = Script(ok_json({"message": "hi"}))

    async def go() -> None:
        async with make_client(script, Sleeps()) as c:
            await c.test()

    run(go())
    assert script.requests[0].url.params["access_token"] == TOKEN


def test_get_submissions_chunks_by_twenty_with_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = [int(i) for i in request.url.params["ids"].split(",")]
        assert int(request.url.params["limit"]) == len(ids) <= 20
        return httpx.Response(200, json={"items": [{"id": i} for i in ids]})

    script = Script(*[handler] * 3)

    async def go() -> list[int]:
        async with make_client(script, Sleeps()) as c:
            return [s.id for s in await c.get_submissions(list(range(45)))]

    assert run(go()) == list(range(45)) and len(script.requests) == 3


def test_stream_is_capped_and_invalid_utf8_replaced() -> None:
    script = Script(lambda r: httpx.Response(200, content=b"ok \xff\xfe" + b"x" * 100))

    async def go() -> str:
        async with make_client(script, Sleeps()) as c:
            return await c.get_stream(1, "debug_log", max_bytes=10)

    text = run(go())
    assert text.startswith("ok \ufffd\ufffdxxxxx") and "cut at 10 bytes" in text


def test_stream_falls_back_to_reference_name() -> None:
    script = Script(
        ok_json({"message": "stream not found", "error_code": 1101}, 404),
        lambda r: httpx.Response(200, content=b"gcc said no"),
    )

    async def go() -> str:
        async with make_client(script, Sleeps()) as c:
            return await c.get_stream(1, "stage_build_error")

    assert run(go()) == "gcc said no"
    assert script.requests[1].url.path.endswith("/stage_compilation_error")


def test_token_never_in_logs_errors_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "grader"):
        caplog.set_level(logging.DEBUG, logger=name)
    seen: list[str] = []

    def leaky(request: httpx.Request) -> httpx.Response:
        # An engine that echoes the token back in its error message.
        return httpx.Response(400, json={"message": f"bad {request.url}", "error_code": 10})

    steps = [
        ok_json({"message": "x"}, 503),
        retry_after("1"),
        raise_(httpx.ConnectError),
        raise_(httpx.ReadTimeout),
        raise_(httpx.RemoteProtocolError),
        lambda r: httpx.Response(200, text="<html>"),
        html_500,
        ok_json({"message": "no", "error_code": 1}, 401),
    ]
    steps += [leaky, ok_json({"message": "x", "error_code": 1001}, 404)]
    steps += [raise_(httpx.ReadError)] * 2 + [ok_json({"id": 7}, 201)]

    async def go() -> None:
        sleeps = Sleeps()
        async with make_client(Script(*steps), sleeps, max_attempts=8) as c:
            seen.append(repr(c) + repr(c.settings) + str(c.settings))
            for call in (c.test(), c.stats(), c.get_submission(1), c.create_submission("p", b"")):
                try:
                    await call
                except (ApiError, TransportError) as exc:
                    logging.getLogger("grader.test").exception("failed")
                    seen.extend([str(exc), repr(exc), str(exc.args)])

    run(go())
    assert len(seen) >= 4
    text = "\n".join(seen) + caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in caplog.text  # httpx's own logger was captured
    assert TOKEN not in text


def test_retry_after_travels_on_the_error_it_came_with() -> None:
    script = Script(retry_after("12"), ok_json({"message": "down"}, 503))

    async def go() -> list[ApiError]:
        errors = []
        async with make_client(script, Sleeps(), max_attempts=1) as c:
            for _ in range(2):
                try:
                    await c.test()
                except ApiError as exc:
                    errors.append(exc)
        return errors

    asked, unasked = run(go())
    assert isinstance(asked, RateLimitedError) and asked.retry_after == 12.0
    assert unasked.http_status == 503 and unasked.retry_after is None


def test_each_token_owner_scrubs_its_own_token_until_it_lets_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    first, second = TokenFilter("tok-first-1a2b"), TokenFilter("tok-second-3c4d")
    first.attach()
    second.attach()
    second.attach()  # idempotent
    logging.getLogger("httpx").info("GET /x?t=%s and %s", "tok-first-1a2b", "tok-second-3c4d")
    second.detach()
    logging.getLogger("httpx").info("after: %s %s", "tok-first-1a2b", "tok-second-3c4d")
    first.detach()
    during, after = (r.getMessage() for r in caplog.records[-2:])
    assert during == "GET /x?t=*** and ***"
    assert after == "after: *** tok-second-3c4d"
    assert "tok-first" not in repr(first)
