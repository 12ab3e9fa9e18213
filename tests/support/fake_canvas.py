"""A small Canvas on loopback, as its REST API documentation describes it, for publish tests.

Served on loopback by ``loopback.serve_http``, so a ``python -m grader`` subprocess
reaches it too. It keeps students, submissions (grade, score, comments) and
Progress objects, and behaves as Canvas does where it matters:

* ``Authorization: Bearer`` tokens; a wrong one is ``401`` with Canvas's error body;
* lists are paginated (``per_page``, capped by ``page_size``) with ``Link`` headers;
* every answer carries ``X-Rate-Limit-Remaining``; ``throttle(n)`` answers the next
  ``n`` requests ``403 Forbidden (Rate Limit Exceeded)`` without doing anything;
* ``update_grades`` returns a queued Progress; the job runs on the first poll and
  completes on the next; ``fail_jobs(n, reach=k)`` makes the next ``n`` jobs reach only
  ``k`` students, then fail; ``hold()`` keeps jobs queued until ``release()``;
* ``hang_posts()`` applies a bulk request at once but never answers it (a dropped
  answer: the client cannot know whether it happened).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.loopback import Answer, Request, serve_http

TOKEN = "canvas-secret-token-7f3a9c"
COURSE = "7"
BUCKET = 700.0


@dataclass
class Submission:
    grade: str | None = None
    score: float | None = None
    comments: list[str] = field(default_factory=list)


@dataclass
class Job:
    id: int
    grade_data: dict[str, dict[str, str]]
    state: str = "queued"
    polls: int = 0
    fail_reach: int | None = None  # reach this many students, then fail
    message: str = ""


class FakeCanvas:
    """The server's state and knobs; every method is thread-safe."""

    def __init__(self, users: list[dict[str, Any]], *, page_size: int = 2) -> None:
        self.users = users
        self.page_size = page_size
        self.submissions: dict[str, Submission] = {str(u["id"]): Submission() for u in users}
        self.jobs: dict[int, Job] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorizations: set[str] = set()
        self.lock = threading.Lock()
        self._throttle = 0
        self._throttle_method: str | None = None
        self._fail: list[int] = []  # reach of each job to fail, in order
        self._held = False
        self._hang = False
        self._drop = 0
        self.post_seen = threading.Event()
        self.released = threading.Event()
        self.url = ""

    # knobs ------------------------------------------------------------------------------
    def throttle(self, count: int, *, method: str | None = None) -> None:
        """Answer the next ``count`` requests (of ``method`` only, if given) 403 throttled."""
        with self.lock:
            self._throttle = count
            self._throttle_method = method

    def fail_jobs(self, count: int, *, reach: int = 0) -> None:
        with self.lock:
            self._fail = [reach] * count

    def hold(self) -> None:
        with self.lock:
            self._held = True

    def release(self) -> None:
        with self.lock:
            self._held = False
            self._hang = False
        self.released.set()

    def hang_posts(self) -> None:
        with self.lock:
            self._hang = True

    def drop_posts(self, count: int) -> None:
        """Close the next ``count`` bulk requests' connections without doing anything."""
        with self.lock:
            self._drop = count

    # what tests read --------------------------------------------------------------------
    def count(self, method: str, pattern: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and re.search(pattern, p))

    def comments(self, user_id: str) -> list[str]:
        with self.lock:
            return list(self.submissions[user_id].comments)

    def grade(self, user_id: str) -> str | None:
        with self.lock:
            return self.submissions[user_id].grade

    # the API ----------------------------------------------------------------------------
    def route(self, request: Request) -> Answer:
        status, payload, headers = self.handle(
            request.method,
            request.path,
            request.query,
            request.form,
            request.headers.get("Authorization", ""),
        )
        if status == -1:
            self.released.wait(60)  # the request was applied; its answer never comes
        return status, payload, headers

    def rate_limit(self, request: Request, answer: Answer) -> dict[str, str]:
        with self.lock:
            left = BUCKET - 10 * len(self.requests)
        return {"X-Rate-Limit-Remaining": f"{max(left, 0):.1f}"}

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], form: dict[str, str], auth: str
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append((method, path))
            self.authorizations.add(auth)
            if auth != f"Bearer {TOKEN}":
                return 401, {"errors": [{"message": "Invalid access token."}]}, {}
            if self._throttle > 0 and self._throttle_method in (None, method):
                self._throttle -= 1
                return (
                    403,
                    "403 Forbidden (Rate Limit Exceeded)\n",
                    {"X-Rate-Limit-Remaining": "0.0"},
                )
            return self._route(method, path, query, form)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], form: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        base = f"/api/v1/courses/{COURSE}"
        if method == "GET" and path == f"{base}/users":
            assert query.get("enrollment_type[]") == ["student"]
            return self._page(path, query, self.users)
        match = re.fullmatch(rf"{base}/assignments/(\d+)/submissions(?:/(\w+))?", path)
        if match and method == "GET" and not match[2]:
            items = [
                {
                    "user_id": uid,
                    "assignment_id": match[1],
                    "grade": s.grade,
                    "score": s.score,
                    "submission_comments": [{"comment": c} for c in s.comments],
                }
                for uid, s in self.submissions.items()
            ]
            return self._page(path, query, items)
        if match and method == "POST" and match[2] == "update_grades":
            return self._update_grades(form)
        if match and method == "PUT" and match[2]:
            if match[2] not in self.submissions:
                return 404, {"errors": [{"message": "The specified resource does not exist."}]}, {}
            self._apply(
                match[2],
                {
                    "posted_grade": form.get("submission[posted_grade]", ""),
                    "text_comment": form.get("comment[text_comment]", ""),
                },
            )
            return 200, {"user_id": match[2], "grade": self.submissions[match[2]].grade}, {}
        match = re.fullmatch(r"/api/v1/progress/(\d+)", path)
        if match and method == "GET":
            return 200, self._poll(int(match[1])), {}
        return 404, {"errors": [{"message": "The specified resource does not exist."}]}, {}

    def _page(
        self, path: str, query: dict[str, list[str]], items: list[Any]
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["10"])[0]), self.page_size)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            rest = "&".join(f"{k}={v[0]}" for k, v in query.items() if k != "page")
            headers["Link"] = (
                f'<{self.url}{path}?{rest}&page={page + 1}>; rel="next", '
                f'<{self.url}{path}?{rest}&page=1>; rel="first"'
            )
        return 200, chunk, headers

    def _update_grades(self, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        data: dict[str, dict[str, str]] = {}
        for key, value in form.items():
            found = re.fullmatch(r"grade_data\[(\w+)\]\[(\w+)\]", key)
            assert found, key
            data.setdefault(found[1], {})[found[2]] = value
        if self._drop > 0:
            self._drop -= 1
            return -2, None, {}
        job = Job(len(self.jobs) + 1, data)
        if self._fail:
            job.fail_reach = self._fail.pop(0)
        self.jobs[job.id] = job
        self.post_seen.set()
        if self._hang:
            self._run(job)
            job.state = "completed"
            return -1, None, {}  # the handler drops the connection
        return 200, self._progress(job), {}

    def _poll(self, job_id: int) -> dict[str, Any]:
        job = self.jobs[job_id]
        if self._held or job.state in ("completed", "failed"):
            return self._progress(job)
        job.polls += 1
        if job.polls == 1:
            job.state = "running"
            self._run(job)
        else:
            job.state = "failed" if job.fail_reach is not None else "completed"
        return self._progress(job)

    def _run(self, job: Job) -> None:
        for index, (uid, entry) in enumerate(job.grade_data.items()):
            if job.fail_reach is not None and index >= job.fail_reach:
                job.message = "update_grades failed: internal error"
                break
            if uid in self.submissions:
                self._apply(uid, entry)

    def _apply(self, uid: str, entry: dict[str, str]) -> None:
        sub = self.submissions[uid]
        if entry.get("posted_grade"):
            sub.grade = entry["posted_grade"]
            sub.score = float(entry["posted_grade"])
        if entry.get("text_comment"):
            sub.comments.append(entry["text_comment"])

    def _progress(self, job: Job) -> dict[str, Any]:
        return {
            "id": str(job.id),
            "context_type": "Course",
            "tag": "submissions_update",
            "completion": 100 if job.state == "completed" else 0,
            "workflow_state": job.state,
            "message": job.message,
            "url": f"{self.url}/api/v1/progress/{job.id}",
        }


@contextmanager
def serve_canvas(canvas: FakeCanvas) -> Iterator[FakeCanvas]:
    with serve_http(canvas.route, canvas.rate_limit) as url:
        canvas.url = url
        try:
            yield canvas
        finally:
            canvas.release()
