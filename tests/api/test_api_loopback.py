"""The loopback transport against a scripted HTTP/1.1 server on a real socket: framings,
keep-alive and its limits, and each fault as the httpx exception the retry policy reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from grader.api.client import ClientSettings, ContainersClient
from grader.api.faults import is_ambiguous
from grader.api.loopback import EAGER_BYTES, LoopbackTransport, is_loopback_http

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


def answer(raw: bytes, *, then_close: bool = False) -> Answer:
    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        if then_close:
            writer.close()

    return send


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (head.encode(), len(body), body)


@dataclass
class Server:
    """Answers each request with the next scripted answer; records what arrived."""

    answers: list[Answer]
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # head, body
    connections: int = 0
    port: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append((head, await reader.readexactly(length)))
                await self.answers.pop(0)(writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self, listener: asyncio.Server) -> None:
        listener.close()
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await listener.wait_closed()


async def serving(answers: list[Answer]) -> tuple[Server, asyncio.Server]:
    server = Server(answers)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    return server, listener


def run(test: Callable[..., Awaitable[None]], answers: list[Answer], **limits: Any) -> Server:
    async def go() -> Server:
        server, listener = await serving(answers)
        transport = LoopbackTransport(max_connections=4, max_idle=2)
        timeout = httpx.Timeout(limits.get("timeout", 5.0))
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url=server.url, timeout=timeout
            ) as client:
                await test(client)
        finally:
            await server.stop(listener)
        return server

    return asyncio.run(go())


def test_answers_of_each_framing_are_read_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    big = b"y" * 150_000
    large = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(big),
        big,
    )
    answers = [answer(ok(b'{"id": 7}')), answer(chunked), answer(ok(b"", "X-A: 1"))]
    answers += [answer(large), answer(ok(b"streamed"))]

    async def parts() -> AsyncIterator[bytes]:
        yield b"in "
        yield b"pieces"

    async def test(client: httpx.AsyncClient) -> None:
        first = await client.post("submissions?x=1", content=b"payload")
        assert (first.status_code, first.json()) == (200, {"id": 7})
        assert first.http_version == "HTTP/1.1" and first.reason_phrase == "OK"
        assert (await client.get("stream")).text == "hello world"
        assert (await client.get("empty")).headers["x-a"] == "1"
        assert (await client.get("large")).content == big
        assert (await client.post("parts", content=parts())).text == "streamed"

    server = run(test, answers)
    assert server.connections == 1  # one connection, kept alive between them all
    head, body = server.requests[0]
    assert head.startswith(b"POST /submissions?x=1 HTTP/1.1\r\n") and body == b"payload"
    assert b"host: 127.0.0.1" in head.lower()
    assert server.requests[4][1] == b"in pieces"  # sent by its length, not in chunks


def test_connection_close_and_unread_bodies_are_not_reused() -> None:
    answers = [
        answer(ok(b"a", "Connection: close")),
        answer(ok(b"b" * 100_000)),
        answer(ok(b"c")),
        answer(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", then_close=True),
        answer(ok(b"d")),
    ]

    async def test(client: httpx.AsyncClient) -> None:
        assert (await client.get("1")).text == "a"
        async with client.stream("GET", "2") as response:  # left after its first piece
            async for _ in response.aiter_raw():
                break
        assert (await client.get("3")).text == "c"
        assert (await client.get("4")).text == "until the end"
        assert (await client.get("5")).text == "d"

    assert run(test, answers).connections == 4


def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    async def close_after(writer: asyncio.StreamWriter) -> None:
        writer.write(ok(b"first"))
        await writer.drain()
        writer.close()  # as a server whose keep-alive ran out

    async def test(client: httpx.AsyncClient) -> None:
        assert (await client.get("1")).text == "first"
        await asyncio.sleep(0.05)
        assert (await client.get("2")).text == "second"

    server = run(test, [close_after, answer(ok(b"second"))])
    assert server.connections == 2 and len(server.requests) == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # closed without an answer
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ],
)
def test_a_lost_or_malformed_answer_is_an_ambiguous_transport_error(raw: bytes) -> None:
    # the request went out: the engine may have acted on it (a create may have happened)
    async def test(client: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await client.post("submissions", content=b"x")
        assert is_ambiguous(caught.value)
        assert "127.0.0.1" not in str(caught.value)

    run(test, [answer(raw, then_close=True)])


def test_a_slow_answer_is_a_read_timeout_and_a_refused_connection_sent_nothing() -> None:
    def stall(start: bytes) -> Answer:
        async def send(writer: asyncio.StreamWriter) -> None:
            writer.write(start)
            await writer.drain()
            await asyncio.sleep(1)

        return send

    big = 10 * EAGER_BYTES
    stalls = [
        stall(b""),  # no answer at all
        stall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"),  # a small body
        stall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nsome" % big),  # streamed
    ]

    async def test(client: httpx.AsyncClient) -> None:
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout) as caught:
                await client.get("slow")
            assert is_ambiguous(caught.value)

    assert run(test, stalls, timeout=0.2).connections == 3  # none of them reused

    async def refused() -> None:
        server, listener = await serving([])
        await server.stop(listener)
        transport = LoopbackTransport(max_connections=1, max_idle=1)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError) as caught:
                await client.get(server.url)
        assert not is_ambiguous(caught.value)

    asyncio.run(refused())


def test_requests_beyond_the_connection_limit_wait_for_a_free_one() -> None:
    async def slow(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.write(ok(b"done"))
        await writer.drain()

    async def go() -> Server:
        server, listener = await serving([slow] * 6)
        transport = LoopbackTransport(max_connections=2, max_idle=2)
        async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
            answers = await asyncio.gather(*(client.get(str(n)) for n in range(6)))
        await server.stop(listener)
        assert [a.text for a in answers] == ["done"] * 6
        return server

    assert asyncio.run(go()).connections == 2


def test_the_client_uses_it_for_a_plain_http_engine_on_this_machine() -> None:
    assert is_loopback_http("http://127.0.0.1:8080/api/v1")
    assert is_loopback_http("http://localhost:8080/api/v1")
    assert is_loopback_http("http://[::1]:8080/api/v1")
    assert not is_loopback_http("https://127.0.0.1:8080/api/v1")
    assert not is_loopback_http("http://engine.example.edu/api/v1")
    assert not is_loopback_http("http://127.0.0.1.example.edu/api/v1")
    assert is_loopback_http("http://127.8.0.1:8080/api/v1")

    async def go() -> None:
        local = ContainersClient(ClientSettings("http://127.0.0.1:1/api/v1", "t"))
        remote = ContainersClient(ClientSettings("https://x.example.edu/api/v1", "t"))
        assert isinstance(local._http._transport, LoopbackTransport)
        assert not isinstance(remote._http._transport, LoopbackTransport)
        await local.aclose()
        await remote.aclose()

    asyncio.run(go())


def test_the_client_sends_the_token_and_parameters_as_httpx_did() -> None:
    items = b'{"items": []}'
    answers = [answer(ok(items)), answer(ok(b'{"id": 5}')), answer(ok(b'{"id": 6}'))]

    async def go() -> Server:
        server, listener = await serving(answers)
        settings = ClientSettings(f"{server.url}/api/v1", "tok/+=", requests_per_second=1000)
        try:
            async with ContainersClient(settings) as client:
                assert await client.get_submissions([1, 2]) == []
                assert await client.create_submission("p", b"tgz", scenario="s") == 5
                assert await client.create_submission("p", b"tgz") == 6
        finally:
            await server.stop(listener)
        return server

    server = asyncio.run(go())
    lines = [head.split(b"\r\n") for head, _ in server.requests]
    assert lines[0][0] == (
        b"GET /api/v1/submissions?ids=1%2C2&limit=2&access_token=tok%2F%2B%3D HTTP/1.1"
    )
    assert (
        lines[1][0] == lines[2][0] == b"POST /api/v1/submissions?access_token=tok%2F%2B%3D HTTP/1.1"
    )
    assert b"Accept: application/json" in lines[1]
    form = server.requests[1][1]
    assert b'name="scenario"\r\n\r\ns\r\n' in form and b"\r\n\r\ntgz\r\n" in form
    assert server.connections == 1
