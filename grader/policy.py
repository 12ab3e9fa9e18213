"""The submission policy: what to do next with one archive, as pure decisions.

The pipeline's driver performs what these functions decide (SQLite writes, create calls,
waiting) and feeds back what happened; nothing here does I/O. The rules:

* a stored submission of the same archive, project and scenario is reused: its final
  result as it is, a submission still running by following it (with ``--force``, only
  one from this very run counts);
* otherwise the archive is submitted, and every attempt that fails for a reason that is
  not the student's is tried again, up to ``infra_retries`` more times; when the
  submission exists on the engine and only reading it failed, the next attempt follows
  it rather than creating it again;
* the engine refusing the archive (400/10) is the student's problem, the project being
  unable to take submissions (400/1003) is the course's: both stop at once;
* any other fault that does not pass stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.api.faults import is_transient
from grader.errors import (
    ArchiveError,
    ConfigError,
    CreationFailedError,
    EngineError,
    GraderError,
    InvalidRequestError,
    NotFoundError,
    SubmissionTimeoutError,
)
from grader.state import SubmissionRow, SubmissionState

DEBUG_SHOWN = 500  # characters of the engine's debug log kept with a status-20 failure


@dataclass(frozen=True)
class Handle:
    """A submission the engine knows: our SQLite row and the engine's id."""

    row_id: int
    engine_id: int


@dataclass(frozen=True)
class Setback:
    """One attempt failed for a reason that is not the student's.

    ``record`` is what the submission's row says from now on (state, detail), if it
    changes; ``follow`` keeps the engine's id when the submission exists there and only
    reading its result failed: the next attempt (or the next run) follows it instead of
    creating the same submission again.
    """

    reason: str
    record: tuple[SubmissionState, str] | None = None
    follow: Handle | None = None


@dataclass(frozen=True)
class Refusal:
    """The engine refused a create for good: record it, then stop with ``error``."""

    detail: str
    error: GraderError


@dataclass(frozen=True)
class Reuse:
    """Take the stored final result of this submission."""

    handle: Handle
    attempts: int


@dataclass(frozen=True)
class Follow:
    """Wait for this submission (again) and read its result."""

    handle: Handle


@dataclass(frozen=True)
class Create:
    """Create the submission: attempt number ``attempt``."""

    attempt: int


@dataclass(frozen=True)
class GiveUp:
    """Every attempt failed: the student is "not graded" (infrastructure), never a zero."""

    reason: str
    attempts: int


def reuse_of(
    row: SubmissionRow | None, *, has_result: bool, run_id: int, force: bool
) -> Reuse | Follow | None:
    """What a stored submission of the same archive is worth to this run; None: submit."""
    if row is None or row.engine_id is None:
        return None
    if force and row.run_id != run_id:
        return None
    handle = Handle(row.id, row.engine_id)
    if row.state == "final" and has_result:
        return Reuse(handle, row.attempt)
    return Follow(handle)


def next_step(attempt: int, budget: int, last: Setback | None) -> Create | Follow | GiveUp:
    """Attempt number ``attempt`` of ``budget``, after ``last`` failed (None: none did)."""
    if attempt > budget:
        reason = last.reason if last is not None else "no attempt was made"
        return GiveUp(f"{budget} attempts failed; last: {reason}", budget)
    if last is not None and last.follow is not None:
        return Follow(last.follow)
    return Create(attempt)


def after_create_error(
    exc: EngineError, *, project: str, course_file: str, assignment: str
) -> Setback | Refusal | None:
    """A create call that failed after the client's retries; None: the run stops on it."""
    if isinstance(exc, InvalidRequestError):
        # the engine refused this student's archive (400/10): that student only
        error = ArchiveError(f"the engine refused the workspace: {exc.api_message}")
        return Refusal(str(exc), error)
    if isinstance(exc, CreationFailedError):
        message = f"the engine cannot create submissions for project {project!r}: {exc.api_message}"
        where = f"assignments.{assignment}.project"
        return Refusal(str(exc), ConfigError(message, file=course_file, where=where))
    if is_transient(exc, polling=False):
        return Setback(str(exc), record=("infra", str(exc)))
    return None


def after_follow_error(exc: EngineError, handle: Handle) -> Setback | None:
    """Waiting for or reading a created submission failed; None: the run stops on it."""
    if isinstance(exc, NotFoundError):
        reason = f"the engine no longer knows submission {handle.engine_id}"
        return Setback(reason, record=("lost", str(exc)))
    if isinstance(exc, SubmissionTimeoutError):
        return Setback(f"engine timeout: {exc}", record=("infra", str(exc)))
    if is_transient(exc, polling=False):
        # the submission exists on the engine: read it again rather than create it again
        reason = f"reading submission {handle.engine_id} failed: {exc}"
        return Setback(reason, follow=handle)
    return None


def after_engine_fault(handle: Handle, debug_log: str) -> Setback:
    """The engine ended the submission with its own internal error (status 20)."""
    detail = f"engine internal error (status 20) on submission {handle.engine_id}"
    return Setback(detail, record=("infra", f"{detail}: {debug_log[:DEBUG_SHOWN]}"))
