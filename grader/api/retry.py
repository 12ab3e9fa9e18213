"""When and how long to retry a call: small pure policy, driven by tenacity."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState

from grader.api.faults import is_transient
from grader.config import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_DEADLINE,
)
from grader.errors import ApiError


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a call is retried."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    deadline: float = DEFAULT_RETRY_DEADLINE


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff(attempt: int, policy: RetryPolicy, *, rng: random.Random) -> float:
    """Exponential backoff with jitter (half fixed, half random), capped."""
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2.0 ** max(0, attempt - 1))
    jitter: float = rng.uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def wait_before_next(
    attempt: int, exc: BaseException | None, policy: RetryPolicy, *, rng: random.Random
) -> float:
    """The wait after failed attempt number ``attempt``; Retry-After wins over backoff."""
    asked = exc.retry_after if isinstance(exc, ApiError) else None
    if asked is not None:
        return min(asked, policy.deadline)
    return backoff(attempt, policy, rng=rng)


def retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random,
    on_retry: Callable[[RetryCallState, float], None],
) -> AsyncRetrying:
    """A tenacity loop for one call under ``policy``; the last error is re-raised."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return wait_before_next(state.attempt_number, exc, policy, rng=rng)

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        # idle_for counts the (possibly injected) sleeps; the real time counts too.
        spent = max(state.idle_for, state.seconds_since_start or 0.0)
        # tenacity computes the wait before asking stop, so upcoming_sleep is set.
        return spent + state.upcoming_sleep > policy.deadline

    def before_sleep(state: RetryCallState) -> None:
        on_retry(state, state.upcoming_sleep)

    return AsyncRetrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=_retry_if(lambda exc: is_transient(exc, polling=False)),
        before_sleep=before_sleep,
        reraise=True,
    )


def _retry_if(predicate: Callable[[BaseException], bool]) -> Callable[[RetryCallState], bool]:
    def check(state: RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        return exc is not None and predicate(exc)

    return check
