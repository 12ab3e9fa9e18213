"""Moodle's web services (REST protocol), the functions `grader publish --to moodle` calls.

Every call is ``POST <site>/webservice/rest/server.php`` with ``wsfunction``,
``moodlewsrestformat=json`` and the token as the form field ``wstoken`` (in the body,
never the URL, so no access log or httpx log line holds it). Moodle answers errors with
HTTP 200 and ``{"exception", "errorcode", "message"}``: ``invalidtoken`` and
``accessexception`` mean the token is refused (exit 3); the rest name the function.

``mod_assign_save_grades`` overwrites a student's grade and feedback comment (Moodle
keeps one feedback text per grade, in its history), so a retried or repeated save never
doubles anything: writes are retried like reads (dropped connections, 5xx, 429).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState

from grader.api.redact import TokenFilter
from grader.api.retry import RetryPolicy, backoff
from grader.errors import LmsError, LmsThrottledError, LmsUnauthorizedError, LmsUnreachableError
from grader.publish.canvas_api import Sleep

log = logging.getLogger("grader.publish")

LMS = "Moodle"
ENDPOINT = "/webservice/rest/server.php"
FORMAT_MARKDOWN = "4"  # Moodle's FORMAT_MARKDOWN for the feedback comment
LOOKUP_CHUNK = 100  # values per core_user_get_users_by_field call
REFUSED_TOKEN = ("invalidtoken", "accessexception")
RETRY_POLICY = RetryPolicy(max_attempts=6, backoff_base=1.0, backoff_cap=30.0, deadline=300.0)


@dataclass(frozen=True)
class MoodleUser:
    id: str
    email: str
    idnumber: str
    username: str


@dataclass(frozen=True)
class MoodleGrade:
    """One student's grade and feedback text for ``mod_assign_save_grades``."""

    user_id: str
    grade: str
    feedback: str


@dataclass(frozen=True)
class MoodleSettingsForClient:
    base_url: str
    token: str = field(repr=False)
    requests_per_second: float = 10.0
    timeout: float = 60.0
    retry: RetryPolicy = RETRY_POLICY


class MoodleClient:
    """Async access to one Moodle site's web services for one token."""

    def __init__(
        self,
        settings: MoodleSettingsForClient,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.redaction = TokenFilter(settings.token)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._limiter = AsyncLimiter(settings.requests_per_second, 1.0)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"), timeout=settings.timeout, transport=transport
        )
        self.requests = 0

    async def __aenter__(self) -> MoodleClient:
        self.redaction.attach()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()
        self.redaction.detach()

    async def users_by_field(self, field_name: str, values: Sequence[str]) -> dict[str, MoodleUser]:
        """``core_user_get_users_by_field``: the users found, by the value asked for."""
        found: dict[str, MoodleUser] = {}
        for start in range(0, len(values), LOOKUP_CHUNK):
            chunk = values[start : start + LOOKUP_CHUNK]
            form = {"field": field_name} | {f"values[{i}]": v for i, v in enumerate(chunk)}
            body = await self.call("core_user_get_users_by_field", form)
            for item in body if isinstance(body, list) else []:
                user = MoodleUser(
                    id=str(item.get("id")),
                    email=str(item.get("email") or ""),
                    idnumber=str(item.get("idnumber") or ""),
                    username=str(item.get("username") or ""),
                )
                key = {"email": user.email, "idnumber": user.idnumber}.get(field_name, user.id)
                for value in chunk:  # Moodle compares e-mail addresses case-insensitively
                    if value.lower() == key.lower():
                        found[value] = user
        return found

    async def grades(self, assignment_id: str) -> dict[str, str]:
        """``mod_assign_get_grades``: the current grade of each user who has one."""
        body = await self.call("mod_assign_get_grades", {"assignmentids[0]": assignment_id})
        grades: dict[str, str] = {}
        assignments = body.get("assignments", []) if isinstance(body, dict) else []
        for assignment in assignments:
            for item in assignment.get("grades", []):
                value = str(item.get("grade", "")).strip()
                if value and not value.startswith("-"):
                    grades[str(item.get("userid"))] = value
        return grades

    async def save_grades(self, assignment_id: str, grades: Sequence[MoodleGrade]) -> None:
        """``mod_assign_save_grades``: grades and feedback comments, many students at once."""
        form = {"assignmentid": assignment_id, "applytoall": "0"}
        for i, g in enumerate(grades):
            prefix = f"grades[{i}]"
            form |= {
                f"{prefix}[userid]": g.user_id,
                f"{prefix}[grade]": g.grade,
                f"{prefix}[attemptnumber]": "-1",
                f"{prefix}[addattempt]": "0",
                f"{prefix}[workflowstate]": "",
                f"{prefix}[plugindata][assignfeedbackcomments_editor][text]": g.feedback,
                f"{prefix}[plugindata][assignfeedbackcomments_editor][format]": FORMAT_MARKDOWN,
            }
        await self.call("mod_assign_save_grades", form)

    async def call(self, function: str, form: Mapping[str, str]) -> Any:
        """One web service function, retried on transient faults; its decoded answer."""
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=self._stop,
            wait=lambda state: backoff(state.attempt_number, self.settings.retry, rng=self._rng),
            retry=_transient,
            before_sleep=lambda state: log.info(
                "%s: %s, retrying in %.1f s", function, _error_of(state), state.upcoming_sleep
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._exchange(function, form)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _exchange(self, function: str, form: Mapping[str, str]) -> Any:
        data = {
            "wstoken": self.settings.token,
            "wsfunction": function,
            "moodlewsrestformat": "json",
            **form,
        }
        async with self._limiter:
            self.requests += 1
            try:
                response = await self._http.post(ENDPOINT, data=data)
            except httpx.TransportError as exc:
                detail = self.redaction.redact(f"{type(exc).__name__}: {exc}")
                raise LmsUnreachableError(f"{LMS}: {function}: {detail}", lms=LMS) from None
        if response.status_code == 429:
            raise LmsThrottledError(f"{LMS}: {function}: throttled", lms=LMS)
        if not response.is_success:
            raise LmsError(
                f"{LMS}: {function}: HTTP {response.status_code}",
                lms=LMS,
                http_status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            raise LmsError(f"{LMS}: {function}: the answer is not JSON", lms=LMS) from None
        if isinstance(body, dict) and "exception" in body:
            raise self._exception(function, body)
        return body

    def _exception(self, function: str, body: Mapping[str, Any]) -> LmsError:
        code = str(body.get("errorcode", ""))
        message = self.redaction.redact(str(body.get("message", "")))
        if code in REFUSED_TOKEN:
            return LmsUnauthorizedError(f"{LMS} refused the web service token ({code})", lms=LMS)
        return LmsError(f"{LMS}: {function}: {message} ({code})", lms=LMS)

    def _stop(self, state: RetryCallState) -> bool:
        policy = self.settings.retry
        spent = max(state.idle_for, state.seconds_since_start or 0.0)
        return (
            state.attempt_number >= policy.max_attempts
            or spent + state.upcoming_sleep > policy.deadline
        )


def _transient(state: RetryCallState) -> bool:
    exc = state.outcome.exception() if state.outcome and state.outcome.failed else None
    if isinstance(exc, LmsThrottledError | LmsUnreachableError):
        return True
    return isinstance(exc, LmsError) and (exc.http_status or 0) >= 500


def _error_of(state: RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome else None
    return str(exc) if exc else "no answer"
