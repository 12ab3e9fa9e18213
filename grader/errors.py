"""One exception tree for the whole grader.

```
GraderError                      exit 1 unless a subclass says otherwise
├── ConfigError                  exit 2: course.toml, config keys, unknown assignment
│   ├── RosterError              exit 2: roster file (file:line)
│   └── CourseLockedError        exit 2: another run holds the course lock
├── StudentError                 one student's problem; the run goes on for the others
│   ├── SourceError              repository unreadable, no commit before the cutoff
│   ├── ArchiveError             workspace too large, unreadable files
│   └── TestReportError          a tests report that cannot be read (grading notes it)
├── EngineError                  anything between us and an engine
│   ├── TransportError           exit 3: connection/timeouts after every retry
│   ├── SubmissionTimeoutError   a submission not final within its deadline
│   └── ApiError                 an answer with an error body {message, error_code}
│       ├── UnauthorizedError    exit 3: 401 / 1
│       ├── InvalidRequestError  400 / 10
│       ├── CreationFailedError  400 / 1003
│       ├── NotFoundError        404 / 1001
│       ├── StreamNotFoundError  404 / 1101
│       ├── IdsNotProvidedError  400 / 205104
│       ├── IdsFormatError       400 / 205105
│       ├── TooManyIdsError      400 / 205106
│       ├── WorkspaceLimitError  409 / 200611
│       ├── ProjectUnavailableError 409 / 200510
│       ├── EditSessionActiveError  409 / 200612
│       ├── RateLimitedError     429 (undocumented but real)
│       └── ServerError          5xx
├── SandboxError                 the local engine could not set up isolation
├── TreeError (also an OSError)  a folder a submission wrote cannot be removed or copied
├── StateError                   exit 2: the SQLite state is unusable (too new, corrupt)
├── RunInterruptedError          exit 130: Ctrl-C; everything finished is kept
├── ExportError                  exit 2: an LMS export cannot be written (missing identities)
└── LmsError                     an LMS's API (Canvas, Moodle) or a student's remote answered
    │                            with an error; what was sent is in the publish ledger
    ├── LmsUnreachableError      exit 3: connection/timeouts after every retry
    ├── LmsUnauthorizedError     exit 3: the LMS refused the token (401)
    └── LmsThrottledError        the LMS asked us to slow down (Canvas 403 "Rate Limit
                                 Exceeded", 429): retried, never surfaced unless it lasts
```

Exit codes (DESIGN.md): 0 all graded; 1 some students not graded; 2 usage or
configuration; 3 engine unreachable or unauthorized. The CLI is the only place that
turns these into exit codes, through ``exit_code``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOT_GRADED = 1
EXIT_CONFIG = 2
EXIT_ENGINE = 3


class GraderError(Exception):
    """Root of every error the grader raises on purpose."""

    exit_code = EXIT_NOT_GRADED


class ConfigError(GraderError):
    """The course folder or its configuration is wrong; names the file and key or line."""

    exit_code = EXIT_CONFIG

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file = file
        self.where = where
        location = file or ""
        if where:
            location = f"{location}:{where}" if location else where
        super().__init__(f"{location}: {message}" if location else message)


class RosterError(ConfigError):
    """The roster cannot be used as a whole (missing column, duplicate id)."""


class CourseLockedError(ConfigError):
    """Another grader run holds this course's lock."""


class StudentError(GraderError):
    """A problem with one student's work; recorded as that student's status."""

    def __init__(self, message: str, *, student_id: str | None = None):
        self.student_id = student_id
        super().__init__(message)


class SourceError(StudentError):
    """The student's repository cannot be read, or holds nothing gradable.

    ``kind`` is what the student's outcome says; ``detail`` says what exactly. The
    message is both: "repository unavailable: branch 'dev' not found in ...".
    """

    kind = "repository unavailable"

    def __init__(self, detail: str, *, student_id: str | None = None):
        self.detail = detail
        super().__init__(f"{self.kind}: {detail}", student_id=student_id)


class ArchiveError(StudentError):
    """The student's workspace cannot be packaged (too large, unreadable)."""


class TestReportError(StudentError):
    """A tests report (Sphere Engine JSON, JUnit XML, Gradescope JSON) cannot be read."""

    __test__ = False  # not a pytest class, despite the name


class EngineError(GraderError):
    """A failure talking to an engine."""


class TransportError(EngineError):
    """The engine could not be reached after every retry."""

    exit_code = EXIT_ENGINE


class SubmissionTimeoutError(EngineError):
    """A submission did not reach a final status before its deadline."""

    def __init__(self, message: str, *, submission_id: int):
        self.submission_id = submission_id
        super().__init__(message)


class ApiError(EngineError):
    """The engine answered with an error body."""

    http_status: int = 0
    error_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_code: int | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ):
        if http_status is not None:
            self.http_status = http_status
        if error_code is not None:
            self.error_code = error_code
        self.api_message = message
        self.method = method
        self.path = path  # never carries the query string, so never the token
        self.retry_after = retry_after  # seconds the engine asked us to wait (Retry-After)
        where = f"{method} {path}: " if method else ""
        code = f" (HTTP {self.http_status}, error_code {self.error_code})"
        super().__init__(f"{where}{message}{code}")


class UnauthorizedError(ApiError):
    http_status = 401
    error_code = 1
    exit_code = EXIT_ENGINE


class InvalidRequestError(ApiError):
    http_status = 400
    error_code = 10


class CreationFailedError(ApiError):
    http_status = 400
    error_code = 1003


class NotFoundError(ApiError):
    http_status = 404
    error_code = 1001


class StreamNotFoundError(ApiError):
    http_status = 404
    error_code = 1101


class IdsNotProvidedError(ApiError):
    http_status = 400
    error_code = 205104


class IdsFormatError(ApiError):
    http_status = 400
    error_code = 205105


class TooManyIdsError(ApiError):
    http_status = 400
    error_code = 205106


class WorkspaceLimitError(ApiError):
    http_status = 409
    error_code = 200611


class ProjectUnavailableError(ApiError):
    http_status = 409
    error_code = 200510


class EditSessionActiveError(ApiError):
    http_status = 409
    error_code = 200612


class RateLimitedError(ApiError):
    http_status = 429


class ServerError(ApiError):
    http_status = 500


API_ERRORS: tuple[type[ApiError], ...] = (
    UnauthorizedError,
    InvalidRequestError,
    CreationFailedError,
    NotFoundError,
    StreamNotFoundError,
    IdsNotProvidedError,
    IdsFormatError,
    TooManyIdsError,
    WorkspaceLimitError,
    ProjectUnavailableError,
    EditSessionActiveError,
)
"""Every documented (HTTP status, error_code) pair, one class each."""


def api_error_class(http_status: int, error_code: int | None) -> type[ApiError]:
    """The class for an error answer; unknown pairs fall back by HTTP status."""
    for cls in API_ERRORS:
        if cls.http_status == http_status and cls.error_code == error_code:
            return cls
    if http_status == 401:
        return UnauthorizedError
    if http_status == 429:
        return RateLimitedError
    if http_status >= 500:
        return ServerError
    if http_status == 404:
        return NotFoundError
    return InvalidRequestError if http_status == 400 else ApiError


class SandboxError(GraderError):
    """The local engine cannot isolate student code as asked."""


class WarmZygoteError(SandboxError):
    """An interpreter's warm zygote could not start (it cannot import pytest, say): the
    harness stages on that interpreter start it themselves instead."""


class TreeError(GraderError, OSError):
    """The local engine cannot remove, copy or walk a folder (one a submission wrote).

    Also an ``OSError``: code that handles a failing file operation handles this one.
    """


class StateError(GraderError):
    """The grader's SQLite state cannot be used."""

    exit_code = EXIT_CONFIG  # the course folder needs attention, not a student


class RunInterruptedError(GraderError):
    """The run was stopped (Ctrl-C); finished work is stored and the next run resumes."""

    exit_code = 130


class ExportError(GraderError):
    """An LMS file cannot be written as asked."""

    exit_code = EXIT_CONFIG


class LmsError(GraderError):
    """An LMS (or a student's remote) refused or failed a publish request.

    ``lms`` names it ("Canvas"); the message never carries the token: requests send it
    in a header, and texts are scrubbed by the client that holds it.
    """

    def __init__(self, message: str, *, lms: str = "", http_status: int | None = None):
        self.lms = lms
        self.http_status = http_status
        super().__init__(message)


class LmsUnreachableError(LmsError):
    """The LMS could not be reached after every retry."""

    exit_code = EXIT_ENGINE


class LmsUnauthorizedError(LmsError):
    """The LMS refused the token (HTTP 401)."""

    exit_code = EXIT_ENGINE


class LmsThrottledError(LmsError):
    """The LMS refused a request because of its rate limit; nothing was done, retry later."""

    def __init__(self, message: str, *, lms: str = "", retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message, lms=lms, http_status=403)
