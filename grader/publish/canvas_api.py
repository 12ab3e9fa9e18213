"""Canvas's REST API, the parts `grader publish --to canvas` needs, resilient under throttling.

Every request goes through the shared loop of ``lms_http.py`` (limiter, retries, one
exchange); this module reads Canvas's answers. The token travels in the
``Authorization: Bearer`` header (never a URL), only to the configured host, is
scrubbed from logs by a ``TokenFilter`` and never appears in an error text.

Canvas throttles by cost (a leaky bucket per token): a throttled request is answered
``403 Forbidden (Rate Limit Exceeded)`` and was *not* performed, so it is retried with
backoff, writes included; every answer says ``X-Rate-Limit-Remaining``, and the client
slows down while the bucket runs low. Any other failure of a write (a dropped
connection, a 5xx) is ambiguous and is never retried here: the caller's ledger settles
it by reading Canvas back. Reads are retried on transport errors and 5xx too. Lists
follow the ``Link: <...>; rel="next"`` header, only on the configured host.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from grader.api.retry import RetryPolicy, parse_retry_after
from grader.errors import LmsError, LmsThrottledError, LmsUnauthorizedError
from grader.publish.lms_http import Form, LmsHttp, LmsHttpSettings, Sleep

LMS = "Canvas"
PER_PAGE = 100  # Canvas's usual ceiling for per_page
LOW_BUCKET = 150.0  # X-Rate-Limit-Remaining below this: pause before the next request
LOW_BUCKET_PAUSE = 1.0  # seconds, scaled up as the bucket empties
DEFAULT_RPS = 10.0
RETRY_POLICY = RetryPolicy(max_attempts=8, backoff_base=1.0, backoff_cap=60.0, deadline=600.0)
PROGRESS_POLL = 1.0  # seconds between Progress reads, growing to PROGRESS_POLL_CAP
PROGRESS_POLL_CAP = 10.0
PROGRESS_TIMEOUT = 900.0  # seconds of polling one bulk job before leaving it to the next run


@dataclass(frozen=True)
class CanvasUser:
    """A student enrolled in the course, as ``GET /courses/:id/users`` lists them."""

    id: str
    name: str
    sis_user_id: str
    login_id: str


@dataclass(frozen=True)
class CanvasSubmission:
    """One student's submission to the assignment: grade and comment texts."""

    user_id: str
    grade: str | None
    score: float | None
    comments: tuple[str, ...]


@dataclass(frozen=True)
class CommentFile:
    """A file to attach to a submission comment."""

    name: str
    content: bytes
    content_type: str


GradeEntry = Mapping[str, str | Sequence[str]]
"""One student's ``grade_data``: ``posted_grade``, ``text_comment``, ``file_ids``."""


@dataclass(frozen=True)
class CanvasProgress:
    """A Canvas Progress object (a background job): queued, running, completed, failed."""

    id: str
    workflow_state: str
    message: str

    @property
    def done(self) -> bool:
        return self.workflow_state in ("completed", "failed")


def canvas_settings(base_url: str, token: str) -> LmsHttpSettings:
    """Canvas at ``base_url`` (the site's address) with its rate and retry defaults."""
    return LmsHttpSettings(
        LMS, base_url, token, requests_per_second=DEFAULT_RPS, timeout=30.0, retry=RETRY_POLICY
    )


class _BearerToken(httpx.Auth):
    """The token in the ``Authorization`` header, and only for requests to ``host``."""

    def __init__(self, token: str, host: str) -> None:
        self._token = token
        self._host = host

    def auth_flow(self, request: httpx.Request) -> Any:
        if request.url.host == self._host:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "_BearerToken('***')"


class CanvasClient(LmsHttp):
    """Async access to one Canvas instance for one token."""

    def __init__(
        self,
        settings: LmsHttpSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        host = httpx.URL(settings.base_url).host
        super().__init__(
            replace(settings, base_url=settings.base_url.rstrip("/") + "/api/v1"),
            sleep=sleep,
            rng=rng,
            transport=transport,
            auth=_BearerToken(settings.token, host),
            headers={"Accept": "application/json+canvas-string-ids, application/json"},
        )
        self._host = host
        self.throttled = 0

    # reads ------------------------------------------------------------------------------
    async def students(self, course_id: str) -> list[CanvasUser]:
        """Every student enrolled in the course (all pages)."""
        params = {"enrollment_type[]": "student", "per_page": str(PER_PAGE)}
        items = await self._pages(f"/courses/{course_id}/users", params)
        return [
            CanvasUser(
                id=str(item["id"]),
                name=str(item.get("name") or ""),
                sis_user_id=str(item.get("sis_user_id") or ""),
                login_id=str(item.get("login_id") or ""),
            )
            for item in items
        ]

    async def submissions(self, course_id: str, assignment_id: str) -> list[CanvasSubmission]:
        """Every submission of the assignment with its comments (all pages)."""
        params = {"include[]": "submission_comments", "per_page": str(PER_PAGE)}
        path = f"/courses/{course_id}/assignments/{assignment_id}/submissions"
        items = await self._pages(path, params)
        return [_submission(item) for item in items]

    async def course_name(self, course_id: str) -> str:
        """``GET /courses/:id``: the course's name (an error when Canvas does not know it)."""
        response = await self._call("GET", f"/courses/{course_id}", write=False)
        return str(_json_object(response).get("name") or "")

    async def assignment_name(self, course_id: str, assignment_id: str) -> str:
        """``GET /courses/:id/assignments/:id``: the assignment's name."""
        path = f"/courses/{course_id}/assignments/{assignment_id}"
        return str(_json_object(await self._call("GET", path, write=False)).get("name") or "")

    async def progress(self, progress_id: str) -> CanvasProgress:
        response = await self._call("GET", f"/progress/{progress_id}", write=False)
        return _progress(response.json())

    async def follow(self, progress: CanvasProgress) -> CanvasProgress:
        """Poll a Progress until it completes or fails (or PROGRESS_TIMEOUT passes)."""
        waited, interval = 0.0, PROGRESS_POLL
        while not progress.done and waited < PROGRESS_TIMEOUT:
            await self.sleep(interval)
            waited += interval
            interval = min(PROGRESS_POLL_CAP, interval * 1.5)
            progress = await self.progress(progress.id)
        return progress

    # writes -----------------------------------------------------------------------------
    async def update_grades(
        self, course_id: str, assignment_id: str, grade_data: Mapping[str, GradeEntry]
    ) -> CanvasProgress:
        """``POST .../submissions/update_grades``: many students at once; returns the job.

        Each entry: ``posted_grade``, ``text_comment`` and ``file_ids`` (files uploaded
        with ``upload_comment_file``, attached to that comment)."""
        form: dict[str, str | list[str]] = {}
        for user_id, entry in grade_data.items():
            for key, value in entry.items():
                if isinstance(value, str):
                    form[f"grade_data[{user_id}][{key}]"] = value
                elif value:
                    form[f"grade_data[{user_id}][{key}][]"] = list(value)
        path = f"/courses/{course_id}/assignments/{assignment_id}/submissions/update_grades"
        response = await self._call("POST", path, data=form, write=True)
        return _progress(response.json())

    async def grade_one(
        self,
        course_id: str,
        assignment_id: str,
        user_id: str,
        *,
        posted_grade: str | None,
        comment: str | None,
        file_ids: Sequence[str] = (),
    ) -> None:
        """``PUT .../submissions/:user_id``: one student's grade and comment, at once."""
        form: dict[str, str | list[str]] = {}
        if posted_grade is not None:
            form["submission[posted_grade]"] = posted_grade
        if comment is not None:
            form["comment[text_comment]"] = comment
        if file_ids:
            form["comment[file_ids][]"] = list(file_ids)
        path = f"/courses/{course_id}/assignments/{assignment_id}/submissions/{user_id}"
        await self._call("PUT", path, data=form, write=True)

    async def upload_comment_file(
        self, course_id: str, assignment_id: str, user_id: str, upload: CommentFile
    ) -> str:
        """A file for a comment on ``user_id``'s submission, through Canvas's documented
        upload flow; its file id, for ``file_ids``. Not attached to anything yet.

        1. ``POST .../submissions/:user_id/comments/files`` (name, size, content type)
           answers ``upload_url`` and ``upload_params``;
        2. a multipart ``POST`` to ``upload_url``: every upload param as given, the file
           last, and never the token (it may be another host: a storage service);
        3. a 3xx is confirmed by a ``GET`` of its ``Location`` (back on Canvas, with the
           token); a 201 holds the file, or says in ``Location`` where to read it.
        A pending file left by a failed or repeated upload is attached to nothing, so
        every step is retried like a read."""
        path = (
            f"/courses/{course_id}/assignments/{assignment_id}/submissions/{user_id}/comments/files"
        )
        form = {
            "name": upload.name,
            "size": str(len(upload.content)),
            "content_type": upload.content_type,
        }
        ticket = (await self._call("POST", path, data=form, write=False, idempotent=True)).json()
        if not isinstance(ticket, dict) or not isinstance(ticket.get("upload_params"), dict):
            raise LmsError(f"{LMS}: POST {path}: expected upload_url and upload_params", lms=LMS)
        upload_url = str(ticket.get("upload_url") or "")
        params = {str(k): str(v) for k, v in ticket["upload_params"].items()}
        stored = await self.send(
            "POST",
            upload_url,
            self._check_upload,
            where=f"the upload of {upload.name}",
            idempotent=True,
            data=params,
            files={"file": (upload.name, upload.content, upload.content_type)},
            authenticated=False,
        )
        if stored.status_code == 201:
            body = _json_object(stored)
            if "id" in body:
                return str(body["id"])
        location = self._on_canvas(stored.headers.get("Location", ""), upload.name)
        confirmed = await self._call("GET", location, write=False)
        body = _json_object(confirmed)
        if "id" not in body:
            raise LmsError(f"{LMS}: the upload of {upload.name} was not confirmed", lms=LMS)
        return str(body["id"])

    # one path for every request ---------------------------------------------------------
    async def _pages(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        query: Mapping[str, str] | None = params
        while url:
            response = await self._call("GET", url, params=query, write=False)
            body = response.json()
            if not isinstance(body, list):
                raise LmsError(f"{LMS}: GET {path}: expected a list", lms=LMS)
            items += [item for item in body if isinstance(item, dict)]
            url, query = self._next_page(response), None
        return items

    def _next_page(self, response: httpx.Response) -> str | None:
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        if httpx.URL(url).host != self._host:
            # the token goes wherever we follow: only ever to the configured Canvas
            raise LmsError(f"{LMS}: a next page on another host was refused", lms=LMS)
        return url

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Form | None = None,
        write: bool,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        where = f"{method} {httpx.URL(path).path}"
        return await self.send(
            method,
            path,
            self._check,
            where=where,
            idempotent=not write if idempotent is None else idempotent,
            params=params,
            data=data,
        )

    async def _check_upload(self, response: httpx.Response, where: str) -> httpx.Response:
        """Step 2's answer: a 3xx or a 201 says the file is stored; anything else failed."""
        if response.is_redirect or response.status_code == 201:
            return response
        status = response.status_code
        if status == 429 or status >= 500:
            raise LmsError(f"{LMS}: {where}: HTTP {status}", lms=LMS, http_status=status)
        text = self.redaction.redact(" ".join(response.text[:200].split()))
        raise LmsError(f"{LMS}: {where} failed (HTTP {status}): {text}", lms=LMS)

    def _on_canvas(self, location: str, name: str) -> str:
        """Where to confirm an upload: only ever on the configured Canvas (with the token)."""
        if not location:
            raise LmsError(f"{LMS}: the upload of {name} answered no Location", lms=LMS)
        if httpx.URL(location).host != self._host:
            raise LmsError(
                f"{LMS}: the upload of {name} is confirmed on another host: refused", lms=LMS
            )
        return location

    async def _check(self, response: httpx.Response, where: str) -> httpx.Response:
        await self._pace(response)
        if response.is_success:
            return response
        raise self._error(response, where)

    async def _pace(self, response: httpx.Response) -> None:
        remaining = _number(response.headers.get("X-Rate-Limit-Remaining"))
        if remaining is not None and remaining < LOW_BUCKET:
            # the bucket refills continuously: the emptier it is, the longer we let it
            await self.sleep(LOW_BUCKET_PAUSE * (1 + (LOW_BUCKET - max(remaining, 0)) / 50))

    def _error(self, response: httpx.Response, where: str) -> LmsError:
        status = response.status_code
        text = self.redaction.redact(response.text[:300])
        if (status == 403 and "rate limit exceeded" in text.lower()) or status == 429:
            self.throttled += 1
            after = parse_retry_after(response.headers.get("Retry-After"))
            return LmsThrottledError(f"{LMS}: {where}: throttled", lms=LMS, retry_after=after)
        if status == 401:
            return LmsUnauthorizedError(f"{LMS} refused the access token (HTTP 401)", lms=LMS)
        message = _error_message(response) or text.strip() or response.reason_phrase
        return LmsError(f"{LMS}: {where}: {message} (HTTP {status})", lms=LMS, http_status=status)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))
        if isinstance(errors, dict):
            return "; ".join(f"{k}: {v}" for k, v in errors.items())
        return str(body.get("message", ""))
    return ""


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _submission(item: Mapping[str, Any]) -> CanvasSubmission:
    comments = item.get("submission_comments") or []
    score = item.get("score")
    return CanvasSubmission(
        user_id=str(item.get("user_id")),
        grade=None if item.get("grade") is None else str(item["grade"]),
        score=float(score) if isinstance(score, int | float | str) and score != "" else None,
        comments=tuple(str(c.get("comment", "")) for c in comments if isinstance(c, dict)),
    )


def _progress(body: object) -> CanvasProgress:
    if not isinstance(body, dict) or "id" not in body:
        raise LmsError(f"{LMS}: expected a Progress object", lms=LMS)
    return CanvasProgress(
        id=str(body["id"]),
        workflow_state=str(body.get("workflow_state", "")),
        message=str(body.get("message") or ""),
    )


def canvas_names(users: Sequence[CanvasUser]) -> dict[str, CanvasUser]:
    """Each user under every key a roster may use: id, sis_user_id and login id."""
    found: dict[str, CanvasUser] = {}
    for user in users:
        found[f"id:{user.id}"] = user
        if user.sis_user_id:
            found[f"sis:{user.sis_user_id}"] = user
        if user.login_id:
            found[f"login:{user.login_id}"] = user
    return found
