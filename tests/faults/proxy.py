"""A fault-injecting HTTP/1.1 proxy on loopback, in front of a real engine.

It runs its own event loop in a thread, speaks HTTP/1.1 through h11 on both sides (no
httpx, so nothing here logs a URL and its ``access_token``), and for each request
decides, from a seeded random draw or a script, to pass it through or to inject one
fault:

``status_503``    answer 503 with an HTML body, without forwarding
``status_429``    answer 429 with ``Retry-After`` (seconds), without forwarding
``reset_before``  read the request, then reset the connection without forwarding
``reset_after``   forward it (the engine does the work), then reset: the answer is lost
``truncate``      forward it, send the headers and half the body, then close
``gateway_504``   forward it, then answer 504 as a gateway that gave up waiting
``gateway_502``   forward it, then answer 502 as a gateway whose upstream hung up
``delay``         wait a little, then forward it normally

Everything injected is counted by kind and by route (``POST /submissions``,
``GET /submissions/:id/:stream``, ...), so a test can compare what the client says it
lost with what was really lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

FAULT_KINDS = (
    "status_503",
    "status_429",
    "reset_before",
    "reset_after",
    "truncate",
    "gateway_504",
    "gateway_502",
    "delay",
)
PASS = "pass"
"""A script entry that lets its request through untouched."""
FORWARDED_THEN_LOST = ("reset_after", "truncate", "gateway_504", "gateway_502")
"""Faults where the engine acted on the request but the client never heard the answer."""
ANSWER_LOST = ("reset_before", *FORWARDED_THEN_LOST)
"""Faults a client cannot tell apart from each other: the request went, no answer came."""

_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"content-length",
    b"host",
    b"te",
    b"trailer",
    b"upgrade",
}
_ID = re.compile(r"^\d+$")
_TOKEN_PARAM = re.compile(r"access_token=[^&]*")
_READ = 65536


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, and how often. Rates are per request, summed must stay <= 1.

    ``script`` entries ``(route, kind)`` are used up first, in order: each one hits the
    next request to ``route`` (``"*"``: any route); kind ``"pass"`` lets it through.
    ``routes`` limits the random faults to some routes; ``None`` means every route.
    ``max_streak`` bounds how many attempts in a row of one call (same method, target
    and content) get a random fault: the client's backoff doubles with each failed
    attempt, so an unbounded streak costs seconds of real waiting.
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after: tuple[str, ...] = ("0", "1")
    delay: tuple[float, float] = (0.02, 0.2)
    script: tuple[tuple[str, str], ...] = ()
    routes: frozenset[str] | None = None
    max_streak: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.rates) | {kind for _, kind in self.script}
        unknown -= {*FAULT_KINDS, PASS}
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")


@dataclass
class FaultLedger:
    """What the proxy saw and did, by route."""

    requests: Counter[str] = field(default_factory=Counter)
    injected: Counter[tuple[str, str]] = field(default_factory=Counter)

    def count(self, kinds: str | tuple[str, ...] | None = None, route: str | None = None) -> int:
        """Faults injected of ``kinds`` (all when None) on ``route`` (all when None)."""
        wanted = (kinds,) if isinstance(kinds, str) else kinds
        return sum(
            n
            for (kind, at), n in self.injected.items()
            if (wanted is None or kind in wanted) and (route is None or at == route)
        )

    def by_kind(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (kind, _), n in self.injected.items():
            totals[kind] += n
        return dict(sorted(totals.items()))


def route_of(method: str, path: str, prefix: str) -> str:
    """``GET /submissions/:id/:stream`` for ``/api/v1/submissions/12/tests_report``."""
    path = path.split("?", 1)[0]
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] in ("submissions", "workspaces"):
        parts[1] = ":id" if _ID.match(parts[1]) or parts[0] == "workspaces" else parts[1]
    if len(parts) >= 3 and parts[0] == "submissions":
        parts[2] = ":stream"
    return f"{method} /{'/'.join(parts)}"


def call_of(request: h11.Request, body: bytes) -> str:
    """What stays the same across a client's retries of one call.

    The token is left out of the target, and a multipart body's boundary (new on
    every attempt) out of the content.
    """
    target = _TOKEN_PARAM.sub("", request.target.decode())
    content_type = dict(request.headers).get(b"content-type", b"")
    _, _, boundary = content_type.partition(b"boundary=")
    if boundary:
        body = body.replace(boundary.strip(b'"'), b"")
    digest = hashlib.sha256(body).hexdigest()
    return f"{request.method.decode()} {target} {digest}"


class FaultProxy:
    """The proxy: ``start()``, point a client at ``url``, read ``ledger``, ``stop()``."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError("the upstream must be http://host:port[/prefix]")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.port = 0
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._rng = random.Random(0)
        self._script: list[tuple[str, str]] = []
        self._streaks: Counter[str] = Counter()
        self.ledger = FaultLedger()
        self.set_plan(plan or FaultPlan())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The proxied API root: same path as the upstream's, this proxy's port."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def set_plan(self, plan: FaultPlan) -> FaultLedger:
        """Use ``plan`` from the next request on, with a fresh ledger (returned)."""
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)
            self._script = list(plan.script)
            self._streaks = Counter()
            self.ledger = FaultLedger()
            return self.ledger

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError("the fault proxy did not start") from self._failure

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- the loop's side --------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 (handed to start(), which raises it)
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped.wait()

    def _decide(self, route: str, call: str) -> tuple[str | None, random.Random]:
        with self._lock:
            self.ledger.requests[route] += 1
            for index, (at, scripted) in enumerate(self._script):
                if at in ("*", route):
                    del self._script[index]
                    return self._record(route, call, None if scripted == PASS else scripted)
            plan = self._plan
            draw = self._rng.random()
            kind = _kind_at(draw, plan.rates)
            if plan.routes is not None and route not in plan.routes:
                kind = None
            if plan.max_streak is not None and self._streaks[call] >= plan.max_streak:
                kind = None
            return self._record(route, call, kind)

    def _record(self, route: str, call: str, kind: str | None) -> tuple[str | None, random.Random]:
        self._streaks[call] = 0 if kind is None else self._streaks[call] + 1
        if kind is not None:
            self.ledger.injected[(kind, route)] += 1
        return kind, self._rng

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, reader)
                if request is None:
                    return
                if not await self._answer(conn, writer, *request):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request, body: bytes
    ) -> bool:
        """Answer one request; False when the connection is gone afterwards."""
        method = request.method.decode()
        target = request.target.decode()
        route = route_of(method, target, self.prefix)
        fault, rng = self._decide(route, call_of(request, body))
        if fault == "reset_before":
            _reset(writer)
            return False
        if fault == "status_503":
            await _send(conn, writer, 503, _html(503, "Service Unavailable"))
            return True
        if fault == "status_429":
            with self._lock:
                wait = rng.choice(self._plan.retry_after)
            await _send(conn, writer, 429, _html(429, "Too Many Requests"), retry_after=wait)
            return True
        if fault == "delay":
            with self._lock:
                low, high = self._plan.delay
                pause = rng.uniform(low, high)
            await asyncio.sleep(pause)
        status, headers, content = await self._forward(request, body)
        if fault == "reset_after":
            _reset(writer)
            return False
        if fault == "gateway_504":
            await _send(conn, writer, 504, _html(504, "Gateway Timeout"))
            return True
        if fault == "gateway_502":
            await _send(conn, writer, 502, _html(502, "Bad Gateway"))
            return True
        if fault == "truncate" and content:
            head = conn.send(h11.Response(status_code=status, headers=_length(headers, content)))
            writer.write(head + conn.send(h11.Data(data=content[: len(content) // 2])))
            await writer.drain()
            writer.close()
            return False
        await _send(conn, writer, status, content, headers=headers)
        return True

    async def _forward(
        self, request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One exchange with the upstream on a fresh connection."""
        reader, writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        try:
            conn = h11.Connection(h11.CLIENT)
            headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
            headers += [
                (b"host", f"{self.upstream_host}:{self.upstream_port}".encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            forwarded = h11.Request(method=request.method, target=request.target, headers=headers)
            out = conn.send(forwarded)
            out += conn.send(h11.Data(data=body)) if body else b""
            writer.write(out + conn.send(h11.EndOfMessage()))
            await writer.drain()
            return await _read_response(conn, reader)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _kind_at(draw: float, rates: Mapping[str, float]) -> str | None:
    edge = 0.0
    for kind in FAULT_KINDS:
        edge += rates.get(kind, 0.0)
        if draw < edge:
            return kind
    return None


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(_READ))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _read_response(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status = 502
    headers: list[tuple[bytes, bytes]] = []
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(_READ))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = [(k, v) for k, v in event.headers if k.lower() not in _HOP_BY_HOP]
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return status, headers, bytes(body)


def _length(headers: list[tuple[bytes, bytes]], content: bytes) -> list[tuple[bytes, bytes]]:
    return [*headers, (b"content-length", str(len(content)).encode())]


async def _send(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    status: int,
    content: bytes,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    retry_after: str | None = None,
) -> None:
    if headers is None:
        headers = [(b"content-type", b"text/html; charset=utf-8")]
    if retry_after is not None:
        headers = [*headers, (b"retry-after", retry_after.encode())]
    out = conn.send(h11.Response(status_code=status, headers=_length(headers, content)))
    out += conn.send(h11.Data(data=content)) + conn.send(h11.EndOfMessage())
    writer.write(out)
    await writer.drain()


def _html(status: int, reason: str) -> bytes:
    return f"<html><body><h1>{status} {reason}</h1></body></html>".encode()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) rather than FIN: the peer reads ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def fault_proxy(upstream: str, plan: FaultPlan | None = None) -> Iterator[FaultProxy]:
    """A started proxy in front of ``upstream``; stopped on exit."""
    proxy = FaultProxy(upstream, plan)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
