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
  answer: the client cannot know whether it happened); ``queue_unanswered()`` queues
  the job and never answers (the client never learns its id), and the job runs only
  when ``run_queued()`` says Canvas's job runner got to it;
* files for submission comments go through the documented upload flow: ``POST
  .../submissions/:user_id/comments/files`` answers ``upload_url`` (``/files_api/<id>``
  here, which takes no token) and signed ``upload_params``; the multipart ``POST`` there
  must carry every param unchanged and the file last, and answers a ``301`` to
  ``create_success`` (the file is available once that is read with the token) or, with
  ``upload_answer = "created"``, a ``201`` with the file; ``fail_uploads(user_id)``
  answers that student's uploads ``400``. ``file_ids`` in ``update_grades`` or the
  one-student ``PUT`` attach available files of that student to the new comment;
* ``GET /courses/:id`` and ``GET /courses/:id/assignments/:id`` (``assignments``) for
  `grader doctor`.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.loopback import Answer, Request, serve_http

TOKEN = "canvas-secret-token-7f3a9c"
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
COURSE = "7"
BUCKET = 700.0


@dataclass
class Submission:
    grade: str | None = None
    score: float | None = None
    comments: list[str] = field(default_factory=list)
    attachments: list[list[int]] = field(default_factory=list)  # file ids, by comment


@dataclass
class File:
    """A file uploaded for a submission comment: pending, then uploaded, then available."""

    id: int
    user_id: str
    name: str
    size: int
    content_type: str
    params: dict[str, str]  # the signed upload_params
    content: bytes | None = None
    state: str = "pending"

    def json(self, url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.name,
            "filename": self.name,
            "size": self.size,
            "content-type": self.content_type,
            "url": f"{url}/files/{self.id}/download",
        }


@dataclass
class Job:
    id: int
    grade_data: dict[str, dict[str, Any]]
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
        self._queue_hang = False
        self.files: dict[int, File] = {}
        self.upload_authorizations: list[str] = []  # what each upload POST carried
        self.upload_answer = "redirect"  # or "created": a 201 with the file
        self._failing_uploads: set[str] = set()
        self.course_name = "Publish 101"
        self.assignments = {"5"}
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

    def queue_unanswered(self) -> None:
        """Queue the next bulk jobs without answering their requests."""
        with self.lock:
            self._queue_hang = True

    def run_queued(self) -> None:
        """Run every job still queued to completion, as Canvas's job runner would."""
        with self.lock:
            for job in self.jobs.values():
                if job.state == "queued":
                    self._run(job)
                    job.state = "completed"

    def drop_posts(self, count: int) -> None:
        """Close the next ``count`` bulk requests' connections without doing anything."""
        with self.lock:
            self._drop = count

    def fail_uploads(self, user_id: str) -> None:
        """Answer every upload of a file for ``user_id``'s comments 400 (as S3 does)."""
        with self.lock:
            self._failing_uploads.add(user_id)

    def heal_uploads(self) -> None:
        with self.lock:
            self._failing_uploads.clear()

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

    def attached(self, user_id: str) -> list[list[bytes]]:
        """The contents of the files attached to each of the student's comments."""
        with self.lock:
            return [
                [self.files[i].content or b"" for i in ids]
                for ids in self.submissions[user_id].attachments
            ]

    # the API ----------------------------------------------------------------------------
    def route(self, request: Request) -> Answer:
        if request.path.startswith("/files_api/"):
            return self._store(request)  # the storage service: no token, signed params
        status, payload, headers = self.handle(request)
        if status == -1:
            self.released.wait(60)  # the request was applied; its answer never comes
        return status, payload, headers

    def rate_limit(self, request: Request, answer: Answer) -> dict[str, str]:
        with self.lock:
            left = BUCKET - 10 * len(self.requests)
        return {"X-Rate-Limit-Remaining": f"{max(left, 0):.1f}"}

    def handle(self, request: Request) -> Answer:
        method, auth = request.method, request.headers.get("Authorization", "")
        with self.lock:
            self.requests.append((method, request.path))
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
            return self._route(request)

    def _route(self, request: Request) -> Answer:
        method, path, query, form = request.method, request.path, request.query, request.form
        base = f"/api/v1/courses/{COURSE}"
        if method == "GET" and path == base:
            return 200, {"id": COURSE, "name": self.course_name, "course_code": "P101"}, {}
        if method == "GET" and path == f"{base}/users":
            assert query.get("enrollment_type[]") == ["student"]
            return self._page(path, query, self.users)
        match = re.fullmatch(rf"{base}/assignments/(\d+)", path)
        if match and method == "GET":
            if match[1] not in self.assignments:
                return 404, NOT_FOUND, {}
            return 200, {"id": match[1], "name": "Homework 1", "points_possible": 10}, {}
        match = re.fullmatch(rf"{base}/assignments/(\d+)/submissions/(\w+)/comments/files", path)
        if match and method == "POST":
            return self._new_file(match[2], form)
        match = re.fullmatch(r"/api/v1/files/(\d+)(/create_success)?", path)
        if match and method == "GET" and int(match[1]) in self.files:
            file = self.files[int(match[1])]
            if match[2] and file.state == "uploaded":
                file.state = "available"  # step 3: the upload is confirmed
            return 200, file.json(self.url), {}
        match = re.fullmatch(rf"{base}/assignments/(\d+)/submissions(?:/(\w+))?", path)
        if match and method == "GET" and not match[2]:
            items = [
                {
                    "user_id": uid,
                    "assignment_id": match[1],
                    "grade": s.grade,
                    "score": s.score,
                    "submission_comments": [
                        {"comment": c, "attachments": [self.files[i].json(self.url) for i in ids]}
                        for c, ids in zip(s.comments, s.attachments, strict=True)
                    ],
                }
                for uid, s in self.submissions.items()
            ]
            return self._page(path, query, items)
        if match and method == "POST" and match[2] == "update_grades":
            return self._update_grades(request.fields)
        if match and method == "PUT" and match[2]:
            if match[2] not in self.submissions:
                return 404, NOT_FOUND, {}
            self._apply(
                match[2],
                {
                    "posted_grade": form.get("submission[posted_grade]", ""),
                    "text_comment": form.get("comment[text_comment]", ""),
                    "file_ids": request.fields.get("comment[file_ids][]", []),
                },
            )
            return 200, {"user_id": match[2], "grade": self.submissions[match[2]].grade}, {}
        match = re.fullmatch(r"/api/v1/progress/(\d+)", path)
        if match and method == "GET":
            return 200, self._poll(int(match[1])), {}
        return 404, NOT_FOUND, {}

    # file uploads ------------------------------------------------------------------------
    def _new_file(self, user_id: str, form: dict[str, str]) -> Answer:
        """Step 1: a pending file and where to upload it."""
        if user_id not in self.submissions:
            return 404, NOT_FOUND, {}
        file_id = 9000 + len(self.files) + 1
        params = {
            "key": f"attachments/{file_id}/{form['name']}",
            "x-amz-signature": secrets.token_hex(8),
            "success_action_redirect": f"{self.url}/api/v1/files/{file_id}/create_success",
        }
        self.files[file_id] = File(
            file_id, user_id, form["name"], int(form["size"]), form["content_type"], params
        )
        return 200, {"upload_url": f"{self.url}/files_api/{file_id}", "upload_params": params}, {}

    def _store(self, request: Request) -> Answer:
        """Step 2: the storage service takes the multipart POST (signed, file last)."""
        with self.lock:
            self.requests.append((request.method, request.path))
            self.upload_authorizations.append(request.headers.get("Authorization", ""))
            file = self.files.get(int(request.path.rsplit("/", 1)[1]))
            if request.method != "POST" or file is None:
                return 404, "<Error><Code>NoSuchKey</Code></Error>", {}
            if file.user_id in self._failing_uploads:
                return 400, "<Error><Code>EntityTooLarge</Code></Error>", {}
            fields = request.multipart()
            names = [name for name, _ in fields]
            sent = {name: value.decode() for name, value in fields[:-1]}
            if names[-1:] != ["file"] or sent != file.params:
                return 403, "<Error><Code>SignatureDoesNotMatch</Code></Error>", {}
            file.content = fields[-1][1]
            if len(file.content) != file.size:
                return 400, "<Error><Code>IncompleteBody</Code></Error>", {}
            if self.upload_answer == "created":
                file.state = "available"
                location = f"{self.url}/api/v1/files/{file.id}"
                return 201, file.json(self.url), {"Location": location}
            file.state = "uploaded"
            return 301, "", {"Location": file.params["success_action_redirect"] + "?uuid=x1"}

    def _page(self, path: str, query: dict[str, list[str]], items: list[Any]) -> Answer:
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

    def _update_grades(self, fields: dict[str, list[str]]) -> Answer:
        data: dict[str, dict[str, Any]] = {}
        for key, values in fields.items():
            found = re.fullmatch(r"grade_data\[(\w+)\]\[(\w+)\](\[\])?", key)
            assert found, key
            data.setdefault(found[1], {})[found[2]] = values if found[3] else values[0]
        if self._drop > 0:
            self._drop -= 1
            return -2, None, {}
        job = Job(len(self.jobs) + 1, data)
        if self._fail:
            job.fail_reach = self._fail.pop(0)
        self.jobs[job.id] = job
        self.post_seen.set()
        if self._queue_hang:
            return -1, None, {}  # queued; the handler drops the connection unanswered
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

    def _apply(self, uid: str, entry: dict[str, Any]) -> None:
        sub = self.submissions[uid]
        if entry.get("posted_grade"):
            sub.grade = entry["posted_grade"]
            sub.score = float(entry["posted_grade"])
        file_ids = [int(i) for i in entry.get("file_ids", [])]
        for file_id in file_ids:  # only a confirmed upload of this student's can be attached
            file = self.files.get(file_id)
            assert file is not None and file.state == "available", file
            assert file.user_id == uid, (file.user_id, uid)
        if entry.get("text_comment") or file_ids:
            sub.comments.append(entry.get("text_comment", ""))
            sub.attachments.append(file_ids)

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
