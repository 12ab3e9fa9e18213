"""The publish ledger: what `grader publish` sent where and when, in the course's SQLite.

One row per student per send. A row is written *before* the request (``sending``, with
the reference its comment carries), is marked ``REQUESTED`` just before a bulk request
goes out, gets the LMS's job id the moment the LMS returns one, and becomes ``sent`` when
the LMS confirms it (or ``failed``). So a run killed at any
point leaves rows that say exactly what may have reached the LMS, and the next run
settles them (``pending``) before planning anything new: nothing is sent twice.
A dry run settles them too, inside a ``rehearsal`` that is rolled back, so its table is
what a real run would do and the database is left exactly as it was.
The comment itself is not stored, only its SHA-256, and never a token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from grader.state import State

PublicationState = Literal["sending", "sent", "failed"]
REQUESTED = "requested"
"""The job column of a row whose bulk request went out with no answer yet: the LMS may
have queued a job whose id we never learnt (a Canvas Progress id is a number)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Publication:
    """One send of one student's grade and/or comment to one target."""

    id: int
    target: str
    assignment: str
    student_id: str
    recipient: str  # who the target knows the student as (Canvas user id, repo, ...)
    value: str | None  # the grade sent; None: a comment only
    comment_sha256: str | None  # None: no comment
    ref: str  # the reference the comment carries, to recognise it after a crash
    state: PublicationState
    job: str | None  # the LMS's job id (Canvas Progress) while it runs
    started_at: datetime
    sent_at: datetime | None
    detail: str | None


@dataclass(frozen=True)
class LastSent:
    """What a target last confirmed for one student: the grade and the comment's hash."""

    value: str | None = None
    comment_sha256: str | None = None
    sent_at: datetime | None = None


_COLUMNS = (
    "id, target, assignment, student_id, recipient, value, comment_sha256, ref, state, job,"
    " started_at, sent_at, detail"
)


class Ledger:
    """The ``publications`` table of one course's state database."""

    def __init__(self, state: State, *, clock: Callable[[], datetime] = _now) -> None:
        self.state = state
        self.db = state.db
        self.clock = clock

    @contextmanager
    def rehearsal(self) -> Iterator[None]:
        """Every ledger write inside is undone at the end (for a dry run, which settles what
        an interrupted run left and plans from there, exactly as a real run would)."""
        self.db.execute("SAVEPOINT rehearsal")
        try:
            yield
        finally:
            self.db.execute("ROLLBACK TO rehearsal")
            self.db.execute("RELEASE rehearsal")

    def begin(
        self,
        target: str,
        assignment: str,
        student_id: str,
        *,
        recipient: str,
        value: str | None,
        comment_sha256: str | None,
    ) -> Publication:
        """Record the intent to send, before the request; returns the row (with its ref)."""
        ref = secrets.token_hex(6)
        cursor = self.db.execute(
            "INSERT INTO publications (target, assignment, student_id, recipient, value,"
            " comment_sha256, ref, state, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'sending', ?)",
            (
                target,
                assignment,
                student_id,
                recipient,
                value,
                comment_sha256,
                ref,
                _iso(self.clock()),
            ),
        )
        return self.get(int(cursor.lastrowid or 0))

    def get(self, row_id: int) -> Publication:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM publications WHERE id = ?", (row_id,)
        ).fetchone()
        return _publication(row)

    def job_requested(self, rows: Sequence[Publication]) -> None:
        """The bulk request is about to go out: from now on the LMS may hold a job for it."""
        self.job_started(rows, REQUESTED)

    def job_started(self, rows: Sequence[Publication], job: str) -> None:
        """The LMS took the request and answered with job ``job`` (Canvas's Progress id)."""
        self.db.executemany(
            "UPDATE publications SET job = ? WHERE id = ?", [(job, r.id) for r in rows]
        )

    def sent(self, rows: Sequence[Publication], detail: str = "") -> None:
        moment = _iso(self.clock())
        self.db.executemany(
            "UPDATE publications SET state = 'sent', sent_at = ?, detail = ? WHERE id = ?",
            [(moment, detail or None, r.id) for r in rows],
        )

    def failed(self, rows: Sequence[Publication], detail: str) -> None:
        self.db.executemany(
            "UPDATE publications SET state = 'failed', detail = ? WHERE id = ?",
            [(detail, r.id) for r in rows],
        )

    def pending(self, target: str, assignment: str) -> list[Publication]:
        """Rows an earlier run began and never settled (it was killed or lost the LMS)."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM publications WHERE target = ? AND assignment = ?"
            " AND state = 'sending' ORDER BY id",
            (target, assignment),
        ).fetchall()
        return [_publication(row) for row in rows]

    def last_sent(self, target: str, assignment: str) -> dict[str, LastSent]:
        """By student id: the newest grade and the newest comment hash the target confirmed."""
        rows = self.db.execute(
            "SELECT student_id, value, comment_sha256, sent_at FROM publications"
            " WHERE target = ? AND assignment = ? AND state = 'sent' ORDER BY id",
            (target, assignment),
        ).fetchall()
        last: dict[str, LastSent] = {}
        for student_id, value, comment_sha256, sent_at in rows:
            before = last.get(student_id, LastSent())
            last[student_id] = LastSent(
                value=value if value is not None else before.value,
                comment_sha256=comment_sha256 or before.comment_sha256,
                sent_at=datetime.fromisoformat(sent_at),
            )
        return last

    def history(self, target: str, assignment: str) -> list[Publication]:
        """Every row for one target and assignment, oldest first (the audit trail)."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM publications WHERE target = ? AND assignment = ? ORDER BY id",
            (target, assignment),
        ).fetchall()
        return [_publication(row) for row in rows]


def _publication(row: Any) -> Publication:  # sqlite3 rows are untyped tuples
    values = list(row)
    values[10] = datetime.fromisoformat(values[10])
    values[11] = datetime.fromisoformat(values[11]) if values[11] else None
    return Publication(*values)
