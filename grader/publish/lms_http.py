"""The one request loop every LMS client of `grader publish` goes through.

A requests-per-second limiter, a tenacity retry loop, one HTTP exchange, and the
LMS's own reading of the answer (``Check``: it returns what the caller wants, or raises
an ``LmsError``). The token is scrubbed from logs by a ``TokenFilter`` for the client's
life and from every error text this loop writes; the caller decides where the token
travels (a header, a form field), never in a URL.

What is retried is one policy for every LMS (``should_retry``): a throttled request
(``LmsThrottledError``) was not performed, so it is retried, writes included, waiting
what the LMS asked for (``Retry-After``) or the backoff; a dropped connection or a 5xx
is retried only for a request that is ``idempotent`` (a read, or a write that
overwrites): any other unanswered write may have happened, and the caller's ledger
settles it by reading the LMS back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState

from grader.api.redact import TokenFilter
from grader.api.retry import RetryPolicy, backoff
from grader.errors import LmsError, LmsThrottledError, LmsUnreachableError

log = logging.getLogger("grader.publish")

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")
DEFAULT_RETRY = RetryPolicy()
Form = Mapping[str, str | list[str]]  # a list: the field repeated (Rails' ``key[]``)
Files = Mapping[str, tuple[str, bytes, str]]  # field -> (file name, content, content type)
Check = Callable[[httpx.Response, str], Awaitable[T]]
"""Reads one answer (``where`` names the request in messages): its value, or an LmsError."""


@dataclass(frozen=True)
class LmsHttpSettings:
    """Where an LMS is and how hard to push it; ``repr`` never shows the token."""

    lms: str  # "Canvas": the name every message starts with
    base_url: str
    token: str = field(repr=False)
    requests_per_second: float = 10.0
    timeout: float = 30.0
    retry: RetryPolicy = DEFAULT_RETRY


class LmsHttp:
    """One LMS's HTTP connection pool behind the shared limiter and retry loop."""

    def __init__(
        self,
        settings: LmsHttpSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.lms = settings.lms
        self.redaction = TokenFilter(settings.token)
        self.sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._limiter = AsyncLimiter(settings.requests_per_second, 1.0)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            auth=auth,
            timeout=settings.timeout,
            transport=transport,
            headers=headers,
        )
        self.requests = 0

    async def __aenter__(self) -> Self:
        self.redaction.attach()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()
        self.redaction.detach()

    async def send(
        self,
        method: str,
        url: str,
        check: Check[T],
        *,
        where: str,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        data: Form | None = None,
        files: Files | None = None,
        authenticated: bool = True,
    ) -> T:
        """One request, retried under the policy; ``check``'s reading of its answer.

        ``authenticated=False`` sends it without the client's auth (an upload to a
        storage service, which must never see the token). ``files`` go after ``data``
        in a multipart body."""
        retrying = AsyncRetrying(
            sleep=self.sleep,
            stop=self._stop,
            wait=self._wait,
            retry=should_retry(idempotent=idempotent),
            before_sleep=lambda state: log.info(
                "%s: %s, retrying in %.1f s", where, _error_of(state), state.upcoming_sleep
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                response = await self._exchange(
                    method, url, params, data, files, where, authenticated=authenticated
                )
                return await check(response, where)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: Form | None,
        files: Files | None,
        where: str,
        *,
        authenticated: bool,
    ) -> httpx.Response:
        extra: dict[str, Any] = {"files": files} if files else {}
        if not authenticated:
            extra["auth"] = None  # httpx: no auth at all, not the client's default
        async with self._limiter:
            self.requests += 1
            try:
                return await self._http.request(method, url, params=params, data=data, **extra)
            except httpx.TransportError as exc:
                detail = self.redaction.redact(f"{type(exc).__name__}: {exc}")
                raise LmsUnreachableError(f"{self.lms}: {where}: {detail}", lms=self.lms) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after if isinstance(exc, LmsThrottledError) else None
        if asked is not None:
            return min(asked, self.settings.retry.backoff_cap)
        return backoff(state.attempt_number, self.settings.retry, rng=self._rng)

    def _stop(self, state: RetryCallState) -> bool:
        policy = self.settings.retry
        # idle_for counts the (possibly injected) sleeps; the real time counts too
        spent = max(state.idle_for, state.seconds_since_start or 0.0)
        return (
            state.attempt_number >= policy.max_attempts
            or spent + state.upcoming_sleep > policy.deadline
        )


def should_retry(*, idempotent: bool) -> Callable[[RetryCallState], bool]:
    """Tenacity's retry test: throttled always; unreachable or 5xx when ``idempotent``."""

    def check(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome and state.outcome.failed else None
        if isinstance(exc, LmsThrottledError):
            return True  # the LMS did nothing: safe for writes too
        if not idempotent or exc is None:
            return False  # an unanswered write may have happened: the ledger settles it
        if isinstance(exc, LmsUnreachableError):
            return True
        return isinstance(exc, LmsError) and (exc.http_status or 0) >= 500

    return check


def _error_of(state: RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome else None
    return str(exc) if exc else "no answer"
