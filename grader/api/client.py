"""Async client for every Containers API v1.1 method, resilient under faults.

Every call goes through one path: the shared requests-per-second limiter, a tenacity
retry loop (``retry.py``), one HTTP exchange, and the error mapping to the GraderError
tree. The token is added to each request by an ``httpx.Auth`` flow as the documented
``access_token`` query parameter, and is scrubbed from logs and error texts. An engine
on this machine over plain http is reached through ``loopback.py``'s transport directly,
without httpx's client layers; the token goes into each request's URL there the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from aiolimiter import AsyncLimiter
from tenacity import RetryCallState

from grader.api.faults import AMBIGUOUS_STATUSES, is_ambiguous
from grader.api.loopback import LoopbackTransport, is_loopback_http
from grader.api.models import (
    STAGE_ALIASES,
    SlotStats,
    Submission,
    Workspace,
    WorkspacePage,
    parse_stats,
    parse_submission,
    parse_workspace,
    parse_workspace_page,
)
from grader.api.redact import TokenFilter
from grader.api.retry import (
    RetryPolicy,
    parse_retry_after,
    retrying,
)
from grader.config import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_RETRY_DEADLINE,
)
from grader.errors import ApiError, StreamNotFoundError, TransportError, api_error_class

log = logging.getLogger("grader.api")

IN_PROCESS_HOST = "grader-local-engine"
"""The host name the in-process engine answers to (through ASGITransport, no socket)."""

USER_AGENT = "grader"

MAX_IDS_PER_CALL = 20
"""The reference's limit for ``GET /submissions?ids=``."""

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


def is_on_this_machine(url: str) -> bool:
    """Whether ``url`` is the in-process engine or one on loopback."""
    host = httpx.URL(url).host
    local = {"localhost", "127.0.0.1", "::1", "testserver", IN_PROCESS_HOST}
    return host in local or host.startswith("127.")


@dataclass(frozen=True)
class ClientSettings:
    """Where the engine is and how hard to push it. ``repr`` never shows the token."""

    base_url: str
    token: str = field(repr=False)
    timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    deadline: float = DEFAULT_RETRY_DEADLINE
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    concurrency: int = DEFAULT_CONCURRENCY
    poll_interval: float | None = None  # None: adapt (0.05-0.5 s local, 2-5 s remote)

    def __repr__(self) -> str:
        return (
            f"ClientSettings(base_url={self.base_url!r}, token='***', timeout={self.timeout}, "
            f"max_attempts={self.max_attempts}, deadline={self.deadline}, "
            f"requests_per_second={self.requests_per_second}, "
            f"concurrency={self.concurrency}, poll_interval={self.poll_interval})"
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap, self.deadline)

    @property
    def is_local(self) -> bool:
        """A loopback engine answers in milliseconds, so polling can be fast."""
        return is_on_this_machine(self.base_url)


@dataclass
class ClientCounters:
    """What the client did, for the run summary and the bench."""

    requests: int = 0  # HTTP exchanges attempted (each retry counts)
    retries: int = 0
    ambiguous_creates: int = 0  # creates whose outcome was unknown: possible duplicates
    by_kind: dict[str, int] = field(default_factory=dict)  # "GET /submissions/:id" -> n


@dataclass(frozen=True)
class Multipart:
    """A ``multipart/form-data`` body, built once: one write on the socket per attempt
    (httpx's own encoder writes each part's pieces one by one)."""

    content: bytes
    boundary: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": f"multipart/form-data; boundary={self.boundary}"}


def multipart_form(fields: Mapping[str, str], file: tuple[str, str, str, bytes]) -> Multipart:
    """The form's text ``fields``, then one ``file`` (field name, file name, type, bytes).

    Names and the file name are ours (plain ASCII, no quotes); values are sent as UTF-8.
    The boundary is random, as httpx's: 32 hex digits no archive will happen to hold.
    """
    boundary = os.urandom(16).hex()
    dash = f"--{boundary}\r\n".encode()
    parts: list[bytes] = []
    for name, value in fields.items():
        head = f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
        parts += [dash, head.encode(), value.encode(), b"\r\n"]
    name, filename, content_type, data = file
    head = (
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    parts += [dash, head.encode(), data, f"\r\n--{boundary}--\r\n".encode()]
    return Multipart(b"".join(parts), boundary)


class _QueryToken(httpx.Auth):
    """Adds ``access_token`` to each request at send time (never stored in our URLs)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.url = request.url.copy_merge_params({"access_token": self._token})
        yield request

    def __repr__(self) -> str:
        return "_QueryToken('***')"


class ContainersClient:
    """Typed async access to a Containers API v1.1 engine (cloud or local)."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.redaction = TokenFilter(settings.token)  # the token's one scrubber
        self.redaction.attach()
        self.settings = settings
        self.counters = ClientCounters()
        self.sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        rate = max(1.0, settings.requests_per_second)
        self._limiter = AsyncLimiter(rate, rate / settings.requests_per_second)
        pool = max(1, settings.concurrency)
        if transport is None and is_loopback_http(settings.base_url):
            # an engine on this machine: asyncio streams, a fraction of httpcore's CPU
            transport = LoopbackTransport(max_connections=pool + 4, max_idle=pool)
        self._loopback = transport if isinstance(transport, LoopbackTransport) else None
        self._base = settings.base_url.rstrip("/") + "/"
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        self._timeouts = httpx.Timeout(settings.timeout).as_dict()
        self._urls: dict[str, httpx.URL] = {}  # constant path -> its URL with the token
        self._http = httpx.AsyncClient(
            base_url=self._base,
            auth=_QueryToken(settings.token),
            timeout=settings.timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=pool + 4, max_keepalive_connections=pool),
            headers={"Accept": "application/json"},
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"ContainersClient(base_url={self.settings.base_url!r})"

    async def __aenter__(self) -> ContainersClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close connections; other owners of the same token keep their own scrubbers."""
        if self._closed:
            return
        self._closed = True
        await self._http.aclose()
        self.redaction.detach()

    # --- API methods ------------------------------------------------------------------

    async def test(self) -> str:
        """``GET /test``: the engine's greeting when the token is accepted."""
        data = await self._json("GET", "test")
        return str(data.get("message", ""))

    async def stats(self) -> SlotStats:
        """``GET /stats``: workspace slots in all and free."""
        return parse_stats(await self._json("GET", "stats"))

    async def create_submission(
        self,
        project_id: str,
        source: bytes,
        *,
        scenario: str | None = None,
        project_config: str | None = None,
    ) -> int:
        """``POST /submissions`` with a tar.gz workspace archive; returns the new id."""
        form = {"project_id": project_id}
        if scenario is not None:
            form["scenario"] = scenario
        if project_config is not None:
            form["project_config"] = project_config
        body = multipart_form(form, ("source", "source.tar.gz", "application/gzip", source))
        data = await self._json("POST", "submissions", body=body, create=True)
        sid = data.get("id")
        if not isinstance(sid, int):
            raise ApiError(
                "creation answer has no submission id",
                method="POST",
                path=self._path("submissions"),
            )
        return sid

    async def get_submission(self, submission_id: int) -> Submission:
        """``GET /submissions/:id``."""
        return parse_submission(await self._json("GET", f"submissions/{int(submission_id)}"))

    async def get_submissions(self, ids: Sequence[int]) -> list[Submission]:
        """``GET /submissions?ids=`` in calls of at most 20 ids; answers in engine order."""
        found: list[Submission] = []
        for start in range(0, len(ids), MAX_IDS_PER_CALL):
            chunk = [int(i) for i in ids[start : start + MAX_IDS_PER_CALL]]
            params = {"ids": ",".join(map(str, chunk)), "limit": str(len(chunk))}
            data = await self._json("GET", "submissions", params=params)
            items = data.get("items")
            if isinstance(items, list):
                found.extend(parse_submission(i) for i in items)
        return found

    async def get_stream(
        self, submission_id: int, stream: str, *, max_bytes: int = 1_000_000
    ) -> str:
        """A stream's text, cut at ``max_bytes``, invalid UTF-8 replaced.

        Canonical names (``stage_build_output``) are asked first; an engine that only
        knows the reference's names (``stage_compilation_output``) is asked again.
        """
        try:
            return await self._stream(submission_id, stream, max_bytes)
        except StreamNotFoundError:
            alias = _reference_stream_name(stream)
            if alias is None:
                raise
            return await self._stream(submission_id, alias, max_bytes)

    async def list_workspaces(
        self,
        *,
        project_id: str | None = None,
        states: Sequence[int] = (),
        limit: int = 10,
        page_token: str | None = None,
    ) -> WorkspacePage:
        """``GET /workspaces``: one page of workspaces."""
        params: list[tuple[str, str]] = [("limit", str(limit))]
        if project_id is not None:
            params.append(("project_id", project_id))
        params.extend(("states[]", str(s)) for s in states)
        if page_token is not None:
            params.append(("page_token", page_token))
        return parse_workspace_page(await self._json("GET", "workspaces", params=params))

    async def create_workspace(
        self, project_id: str, *, project_config: str | None = None
    ) -> Workspace:
        """``POST /workspaces``."""
        form = {"project_id": project_id}
        if project_config is not None:
            form["project_config"] = project_config
        data = await self._json("POST", "workspaces", data=form)
        return parse_workspace(data.get("workspace"))

    async def get_workspace(self, workspace_id: str) -> Workspace:
        """``GET /workspaces/:id``."""
        return parse_workspace(await self._json("GET", f"workspaces/{workspace_id}"))

    # --- one path for every call ----------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        data: dict[str, str] | None = None,
        body: Multipart | None = None,
        create: bool = False,
    ) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            response = await self._send(method, path, params, data, body, create=create)
            try:
                return self._decode(response, method)
            except ApiError:
                if create and response.is_success:
                    self.counters.ambiguous_creates += 1  # created, but its id was lost
                raise

        return await self._retry(once, method, path)

    async def _stream(self, submission_id: int, stream: str, max_bytes: int) -> str:
        path = f"submissions/{int(submission_id)}/{stream}"

        async def once() -> str:
            await self._limiter.acquire()
            self._count("GET", path)
            try:
                response = await self._exchange("GET", path, stream=True)
                try:
                    if response.status_code >= 400:
                        await response.aread()
                        raise self._error(response, "GET")
                    body = await _read_capped(response, max_bytes)
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                raise _transport_error(exc, "GET", self._path(path), self.redaction) from None
            text = body.decode("utf-8", errors="replace")
            if len(body) > max_bytes:
                text = body[:max_bytes].decode("utf-8", errors="replace")
                text += f"\n[... cut at {max_bytes} bytes]"
            return text

        return await self._retry(once, "GET", path)

    async def _retry(self, once: Callable[[], Awaitable[T]], method: str, path: str) -> T:
        def on_retry(state: RetryCallState, wait: float) -> None:
            self.counters.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info(
                "retrying %s %s in %.2fs after attempt %d: %s",
                method,
                self._path(path),
                wait,
                state.attempt_number,
                self.redaction.redact(str(exc)),
            )

        policy = self.settings.retry_policy
        loop = retrying(policy, sleep=self.sleep, rng=self._rng, on_retry=on_retry)
        try:
            async for attempt in loop:
                with attempt:
                    return await once()
        except httpx.TransportError as exc:  # only if a raw one slipped through
            raise _transport_error(exc, method, self._path(path), self.redaction) from None
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _send(
        self,
        method: str,
        path: str,
        params: Any,
        data: dict[str, str] | None,
        body: Multipart | None,
        *,
        create: bool,
    ) -> httpx.Response:
        await self._limiter.acquire()
        self._count(method, path)
        try:
            response = await self._exchange(method, path, params=params, data=data, body=body)
        except httpx.TransportError as exc:
            if create and is_ambiguous(exc):
                self.counters.ambiguous_creates += 1
            # from None: the httpx error holds the request, whose URL holds the token.
            raise _transport_error(exc, method, self._path(path), self.redaction) from None
        if create and response.status_code in AMBIGUOUS_STATUSES:
            self.counters.ambiguous_creates += 1
        return response

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        data: dict[str, str] | None = None,
        body: Multipart | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One HTTP exchange; with ``stream`` the body is left for the caller to read.

        An engine on loopback gets the request straight from its transport: httpx's
        client layers (URL merging, the auth flow, cookies, redirects, its log line) cost
        more CPU than the exchange itself. The token goes into that request's URL as
        the auth flow would put it, and like it into no URL of ours.
        """
        content, headers = (body.content, body.headers) if body is not None else (None, None)
        if self._loopback is None:
            request = self._http.build_request(
                method, path, params=params, data=data, content=content, headers=headers
            )
            return await self._http.send(request, stream=stream)
        request = httpx.Request(
            method,
            self._tokened_url(path, params),
            headers={**self._headers, **(headers or {})},
            content=content,
            data=data,
            extensions={"timeout": self._timeouts},
        )
        response = await self._loopback.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response

    def _tokened_url(self, path: str, params: Any) -> httpx.URL:
        """The request's URL with the token (one parse; the constant ones kept)."""
        constant = params is None and not any(ch.isdigit() for ch in path)  # no id in it
        if constant and path in self._urls:
            return self._urls[path]
        query = list(params.items() if isinstance(params, dict) else params or ())
        query.append(("access_token", self.settings.token))
        url = httpx.URL(f"{self._base}{path}?{urlencode(query)}")
        if constant:
            self._urls[path] = url
        return url

    def _decode(self, response: httpx.Response, method: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise self._error(response, method)
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            # A proxy's half-written or HTML answer: transient, treat as a server fault.
            cls = api_error_class(502, None)
            raise cls(
                f"malformed answer (not a JSON object, HTTP {response.status_code})",
                http_status=502,
                method=method,
                path=response.request.url.path,
            )
        return data

    def _error(self, response: httpx.Response, method: str) -> ApiError:
        status = response.status_code
        message, code = _error_body(response)
        cls = api_error_class(status, code)
        wait = None
        if status in (429, 503):
            wait = parse_retry_after(response.headers.get("Retry-After"))
        return cls(
            self.redaction.redact(message),
            http_status=status,
            error_code=code,
            method=method,
            path=response.request.url.path,
            retry_after=wait,
        )

    def _count(self, method: str, path: str) -> None:
        self.counters.requests += 1
        parts = path.split("/")
        if len(parts) > 1:
            parts[1] = ":id"
        if len(parts) > 2:
            parts[2] = ":stream"
        kind = f"{method} /{'/'.join(parts)}"
        self.counters.by_kind[kind] = self.counters.by_kind.get(kind, 0) + 1

    def _path(self, path: str) -> str:
        return httpx.URL(self._http.base_url.join(path)).path


def _error_body(response: httpx.Response) -> tuple[str, int | None]:
    """``{message, error_code}`` when the body has it; else a short plain description."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        code = data.get("error_code")
        message = data.get("message")
        return (
            str(message) if message is not None else response.reason_phrase,
            code if isinstance(code, int) and not isinstance(code, bool) else None,
        )
    # An HTML error page says nothing useful; keep the status line only.
    return f"{response.status_code} {response.reason_phrase}".strip(), None


def _transport_error(
    exc: httpx.TransportError, method: str, path: str, redaction: TokenFilter
) -> TransportError:
    detail = redaction.redact(str(exc)) or "no detail"
    return TransportError(f"{method} {path}: {type(exc).__name__}: {detail}")


def _reference_stream_name(stream: str) -> str | None:
    reverse = {v: k for k, v in STAGE_ALIASES.items()}
    parts = stream.split("_")
    if len(parts) == 3 and parts[0] == "stage" and parts[1] in reverse:
        return f"stage_{reverse[parts[1]]}_{parts[2]}"
    return None


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` + 1 bytes (the extra byte tells a cut happened)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            break
    return b"".join(chunks)[: max_bytes + 1]
