"""The submission policy's decisions, with plain values (no engine, no SQLite)."""

from __future__ import annotations

import pytest

from grader.errors import (
    ApiError,
    ArchiveError,
    ConfigError,
    CreationFailedError,
    InvalidRequestError,
    NotFoundError,
    ProjectUnavailableError,
    RateLimitedError,
    ServerError,
    SubmissionTimeoutError,
    TransportError,
    UnauthorizedError,
)
from grader.policy import (
    Create,
    Follow,
    GiveUp,
    Handle,
    Refusal,
    Reuse,
    Setback,
    after_create_error,
    after_engine_fault,
    after_follow_error,
    next_step,
    reuse_of,
)
from grader.state import SubmissionRow, SubmissionState

HANDLE = Handle(row_id=3, engine_id=41)
WHERE = {"project": "hw1", "course_file": "/c/course.toml", "assignment": "hw1"}


def row(state: SubmissionState, *, engine_id: int | None = 41, run_id: int = 1) -> SubmissionRow:
    fields = (3, run_id, "hw1", "ada", "local", "k", "sha", "hw1", None, engine_id, state, 2)
    return SubmissionRow(*fields, status_code=None, status_name=None, detail=None)


def test_a_final_stored_result_is_reused_with_its_attempts() -> None:
    assert reuse_of(row("final"), has_result=True, run_id=1, force=False) == Reuse(HANDLE, 2)


def test_a_submission_created_before_a_crash_is_followed_not_created_again() -> None:
    assert reuse_of(row("created"), has_result=False, run_id=9, force=False) == Follow(HANDLE)
    # final, but its result never reached SQLite: read it again
    assert reuse_of(row("final"), has_result=False, run_id=1, force=False) == Follow(HANDLE)


@pytest.mark.parametrize(
    ("found", "force"),
    [(None, False), (row("creating", engine_id=None), False), (row("final", run_id=1), True)],
)
def test_nothing_to_reuse_means_submitting(found: SubmissionRow | None, force: bool) -> None:
    assert reuse_of(found, has_result=True, run_id=2, force=force) is None


def test_force_reuses_only_what_this_very_run_made() -> None:
    assert reuse_of(row("final", run_id=2), has_result=True, run_id=2, force=True) == Reuse(
        HANDLE, 2
    )


def test_attempts_create_until_the_budget_then_give_up_with_the_last_reason() -> None:
    assert next_step(1, 3, None) == Create(1)
    assert next_step(2, 3, Setback("status 20")) == Create(2)
    assert next_step(4, 3, Setback("timeout")) == GiveUp("3 attempts failed; last: timeout", 3)


def test_a_submission_that_exists_is_followed_on_the_next_attempt() -> None:
    assert next_step(2, 3, Setback("poll failed", follow=HANDLE)) == Follow(HANDLE)
    assert next_step(1, 1, Setback("poll failed", follow=HANDLE)) == Follow(HANDLE)


def test_an_archive_the_engine_refuses_is_the_students_and_stops_at_once() -> None:
    verdict = after_create_error(InvalidRequestError("bad tar", http_status=400), **WHERE)
    assert isinstance(verdict, Refusal) and isinstance(verdict.error, ArchiveError)
    assert str(verdict.error) == "the engine refused the workspace: bad tar"


def test_a_project_that_cannot_take_submissions_is_a_config_error_naming_the_key() -> None:
    verdict = after_create_error(CreationFailedError("no such project"), **WHERE)
    assert isinstance(verdict, Refusal) and isinstance(verdict.error, ConfigError)
    assert str(verdict.error).startswith("/c/course.toml:assignments.hw1.project: ")


@pytest.mark.parametrize(
    "exc",
    [
        TransportError("reset"),
        ServerError("boom"),
        RateLimitedError("slow"),
        ProjectUnavailableError("busy"),
    ],
)
def test_a_passing_create_fault_is_recorded_and_created_again(exc: ApiError) -> None:
    assert after_create_error(exc, **WHERE) == Setback(str(exc), record=("infra", str(exc)))


@pytest.mark.parametrize("exc", [UnauthorizedError("no"), NotFoundError("?"), ApiError("odd")])
def test_any_other_create_fault_stops_the_run(exc: ApiError) -> None:
    assert after_create_error(exc, **WHERE) is None


def test_a_lost_or_timed_out_submission_is_created_again() -> None:
    lost = after_follow_error(NotFoundError("gone"), HANDLE)
    assert lost is not None and lost.record is not None and lost.follow is None
    assert lost.record[0] == "lost" and "no longer knows submission 41" in lost.reason
    late = after_follow_error(SubmissionTimeoutError("not final", submission_id=41), HANDLE)
    assert late == Setback("engine timeout: not final", record=("infra", "not final"))


def test_a_passing_read_fault_keeps_the_id_and_writes_nothing() -> None:
    setback = after_follow_error(ServerError("502"), HANDLE)
    assert setback is not None and setback.follow == HANDLE and setback.record is None
    assert after_follow_error(UnauthorizedError("no"), HANDLE) is None


def test_an_engine_internal_error_keeps_a_short_debug_log() -> None:
    setback = after_engine_fault(HANDLE, "x" * 2000)
    assert setback.reason == "engine internal error (status 20) on submission 41"
    assert setback.record == ("infra", f"{setback.reason}: {'x' * 500}")
