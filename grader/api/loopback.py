"""HTTP/1.1 to an engine on this machine: the client's transport for a plain ``http://``
loopback address (``grader engine serve``, or a proxy in front of it on this machine).

httpx's own transport (httpcore over anyio) costs about 0.8 ms of the grader's CPU per
request on loopback: a pool that polls every idle socket at each request, cancel scopes
around every read and write, a state machine per event. For an engine one socket away
that is most of a small submission's cost. Here a request is one write (head and body
together) and its answer is read with ``asyncio`` streams: the head in one read up to the
blank line, the body by ``Content-Length``, by chunks, or to the end of the connection.
Connections are kept for reuse while idle for less than ``KEEPALIVE_SECONDS`` (below the
5 s after which uvicorn closes them) and are dropped when the server closed them, when an
answer says ``Connection: close`` or when a body was not read to its end.

Requests and answers stay httpx's ``Request`` and ``Response`` (URL, headers, content
decoding); ``ContainersClient`` hands requests to it directly. Faults surface as httpx's
exception classes, as httpcore's would, so the retry policy (``grader/api/faults.py``)
reads them the same way: ``ConnectError`` and ``ConnectTimeout`` when nothing was sent,
``PoolTimeout`` when no connection was free, and after a request went out ``WriteError``,
``ReadError``, ``ReadTimeout`` or ``RemoteProtocolError`` (the answer was lost or
malformed: the request may have acted). Error texts name what happened, never the URL or
its token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

import httpx

KEEPALIVE_SECONDS = 4.0
"""An idle connection older than this is closed rather than reused."""
READ_SIZE = 65536
EAGER_BYTES = 65536
"""A body announced at most this long is read with the head, under one deadline."""

T = TypeVar("T")


def is_loopback_http(url: str) -> bool:
    """Whether ``url`` is plain ``http://`` to this machine (what this transport serves):
    ``localhost`` or a loopback address, never a name that merely starts like one."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http":
        return False
    if parsed.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(parsed.host).is_loopback
    except ValueError:
        return False


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def reusable(self, now: float) -> bool:
        return (
            now - self.idle_since < KEEPALIVE_SECONDS
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )

    def close(self) -> None:
        self.writer.close()


class LoopbackTransport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` requests at a time; up to ``max_idle`` kept for reuse."""

    def __init__(self, *, max_connections: int, max_idle: int) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts = request.extensions.get("timeout", {})
        await self._acquire(request, timeouts.get("pool"))
        connection: _Connection | None = None
        try:
            body = await request.aread()
            connection = self._reused() or await self._connect(request, timeouts.get("connect"))
            writer = connection.writer
            writer.write(_head(request, body) + body)
            if writer.transport.get_write_buffer_size():  # not all taken by the socket yet
                await _io(
                    writer.drain(),
                    timeouts.get("write"),
                    request,
                    httpx.WriteTimeout,
                    httpx.WriteError,
                )
            # one deadline for the head and a small body (a timer costs as much as a read)
            status, reason, headers, framing, content = await _io(
                _answer(connection, request),
                timeouts.get("read"),
                request,
                httpx.ReadTimeout,
                httpx.ReadError,
            )
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": reason}
        if content is not None:
            self._finished(connection, reuse=framing.keep)
            return httpx.Response(status, headers=headers, content=content, extensions=extensions)
        stream = _Body(self, connection, request, framing, timeouts.get("read"))
        return httpx.Response(status, headers=headers, stream=stream, extensions=extensions)

    async def _acquire(self, request: httpx.Request, seconds: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken at once
            return
        try:
            async with asyncio.timeout(seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection was free in time", request=request) from None

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    def _reused(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable(now):
                return connection
            connection.close()
        return None

    async def _connect(self, request: httpx.Request, seconds: float | None) -> _Connection:
        host, port = request.url.host, request.url.port or 80
        try:
            async with asyncio.timeout(seconds):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out connecting", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(_describe(exc), request=request) from None
        return _Connection(reader, writer)

    def _finished(self, connection: _Connection, *, reuse: bool) -> None:
        if reuse and not self._closed and len(self._idle) < self._max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()


@dataclass(frozen=True)
class _Framing:
    """How an answer's body ends: after ``length`` bytes, after its last chunk
    (``chunked``), or at the end of the connection (neither); ``keep``: whether the
    connection may be reused after it."""

    length: int | None = None
    chunked: bool = False
    keep: bool = True


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; the connection goes back to the pool once it was
    read to its end (and the answer allows it), else it is closed."""

    def __init__(
        self,
        transport: LoopbackTransport,
        connection: _Connection,
        request: httpx.Request,
        framing: _Framing,
        seconds: float | None,
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._request = request
        self._framing = framing
        self._seconds = seconds
        self._complete = False
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader, framing = self._connection.reader, self._framing
        if framing.chunked:
            while size := _chunk_size(await self._read(reader.readuntil(b"\r\n")), self._request):
                async for data in self._exactly(size):
                    yield data
                if await self._read(reader.readexactly(2)) != b"\r\n":
                    raise httpx.RemoteProtocolError("malformed chunked body", request=self._request)
            while await self._read(reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers, unused
        elif framing.length is not None:
            async for data in self._exactly(framing.length):
                yield data
        else:
            while data := await self._read(reader.read(READ_SIZE)):
                yield data
        self._complete = True

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        self._transport._finished(self._connection, reuse=self._complete and self._framing.keep)

    async def _exactly(self, size: int) -> AsyncIterator[bytes]:
        """``size`` bytes in pieces of at most ``READ_SIZE`` (a large body is never one
        allocation before the reader's cap sees it)."""
        remaining = size
        while remaining:
            data = await self._read(self._connection.reader.read(min(remaining, READ_SIZE)))
            if not data:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection in the middle of an answer "
                    f"({size - remaining} of {size} bytes of the body)",
                    request=self._request,
                )
            remaining -= len(data)
            yield data

    async def _read(self, awaitable: Awaitable[T]) -> T:
        return await _io(
            awaitable, self._seconds, self._request, httpx.ReadTimeout, httpx.ReadError
        )


async def _io(
    awaitable: Awaitable[T],
    seconds: float | None,
    request: httpx.Request,
    timeout_error: type[httpx.TimeoutException],
    io_error: type[httpx.NetworkError],
) -> T:
    """``awaitable`` within ``seconds``, its faults as httpx's exceptions."""
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:  # before OSError: it is one
        raise timeout_error("timed out", request=request) from None
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError(
            "the server closed the connection in the middle of an answer"
            if exc.partial
            else "the server closed the connection without an answer",
            request=request,
        ) from None
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError("an answer line is too long", request=request) from None
    except OSError as exc:
        raise io_error(_describe(exc), request=request) from None


_Answer = tuple[int, bytes, list[tuple[bytes, bytes]], "_Framing", bytes | None]


async def _answer(connection: _Connection, request: httpx.Request) -> _Answer:
    """The answer's status, reason, headers and framing, and its body when it is known to
    be at most ``EAGER_BYTES`` (else None: read as it is iterated)."""
    status, reason, headers = await _read_head(connection, request)
    while 100 <= status < 200:  # an interim answer: the real one follows
        status, reason, headers = await _read_head(connection, request)
    framing = _framing(request, status, headers)
    content = None
    if framing.length is not None and framing.length <= EAGER_BYTES:
        content = await connection.reader.readexactly(framing.length)
    return status, reason, headers, framing, content


async def _read_head(
    connection: _Connection, request: httpx.Request
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The status, reason and headers of the next answer on ``connection``."""
    raw = await connection.reader.readuntil(b"\r\n\r\n")
    lines = raw[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError("malformed status line", request=request)
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise httpx.RemoteProtocolError("malformed header line", request=request)
        headers.append((name, value.strip()))
    if version != b"HTTP/1.1":  # an HTTP/1.0 answer: not kept alive
        headers.append((b"connection", b"close"))
    return int(code), reason, headers


def _framing(request: httpx.Request, status: int, headers: list[tuple[bytes, bytes]]) -> _Framing:
    keep = not _has_token(headers, b"connection", b"close")
    if request.method == "HEAD" or status in (204, 304):
        return _Framing(length=0, keep=keep)
    if _has_token(headers, b"transfer-encoding", b"chunked"):
        return _Framing(chunked=True, keep=keep)
    lengths = {value for name, value in headers if name.lower() == b"content-length"}
    if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
        raise httpx.RemoteProtocolError("malformed Content-Length", request=request)
    if not lengths:
        return _Framing(keep=False)  # up to the end of the connection
    return _Framing(length=int(lengths.pop()), keep=keep)


def _has_token(headers: list[tuple[bytes, bytes]], name: bytes, token: bytes) -> bool:
    return any(
        key.lower() == name and token in (t.strip().lower() for t in value.split(b","))
        for key, value in headers
    )


def _chunk_size(line: bytes, request: httpx.Request) -> int:
    text = line.split(b";", 1)[0].strip()
    try:
        size = int(text, 16)
    except ValueError:
        raise httpx.RemoteProtocolError("malformed chunk size", request=request) from None
    if size < 0:
        raise httpx.RemoteProtocolError("malformed chunk size", request=request)
    return size


def _head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers; the body (read whole) goes by its length."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines += [
        name + b": " + value
        for name, value in request.headers.raw
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    if body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _describe(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
