"""`grader publish --to canvas`: the ledger-guarded driver over ``CanvasClient``.

1. Students enrolled in the course are listed (all pages) and matched to the roster by
   ``canvas_id``, else ``sis_user_id``, else ``sis_login_id``; the unmatched are listed.
2. Ledger rows an earlier run left ``sending`` are settled first: their Progress is read
   (and followed); a job that failed, or a request that never got an answer, is checked
   against the submissions' comments, which carry each row's reference (the students of
   an unanswered bulk request, whose job Canvas may still hold queued, are sent again
   only after QUEUED_GRACE).
3. Each student's delivery is planned (``plan.py``) against what Canvas last confirmed.
4. Deliveries go out in bulk (``update_grades``, BULK_SIZE students a request) and the
   Progress is followed; students a failed job did not reach are sent one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta

from grader.config import CanvasSettings
from grader.errors import LmsError, LmsUnauthorizedError, LmsUnreachableError
from grader.publish.bulk import BulkPublisher, PublishJob, Settled
from grader.publish.canvas_api import (
    CanvasClient,
    CanvasProgress,
    CanvasSubmission,
    CanvasUser,
    CommentFile,
    GradeEntry,
    canvas_names,
)
from grader.publish.ledger import REQUESTED, Ledger, Publication
from grader.publish.plan import Delivery, with_ref
from grader.publish.results import PublishLine
from grader.reports.excerpt import number_text
from grader.roster import Student

QUEUED_GRACE = timedelta(minutes=30)
"""How long a bulk job Canvas may have queued (its request went unanswered) is given to
show up before its students are sent again: Canvas runs update_grades jobs in seconds to
minutes, and the request itself was retried for at most PROGRESS_TIMEOUT."""


@dataclass(frozen=True, kw_only=True)
class CanvasJob(PublishJob):
    """One assignment's publish to Canvas: where, besides who and what."""

    settings: CanvasSettings
    assignment_id: str  # Canvas's id of the assignment


@dataclass(frozen=True)
class Outgoing:
    """One student's comment as sent: the ledger row, the text with its ref, the files."""

    row: Publication
    text: str
    file_ids: tuple[str, ...] = ()

    def grade_entry(self) -> GradeEntry:
        entry: dict[str, str | Sequence[str]] = {"text_comment": self.text}
        if self.row.value is not None:
            entry["posted_grade"] = self.row.value
        if self.file_ids:
            entry["file_ids"] = self.file_ids
        return entry


def match_student(student: Student, names: Mapping[str, CanvasUser]) -> CanvasUser | None:
    """The Canvas user of a roster row: canvas_id, else sis_user_id, else sis_login_id."""
    if student.canvas_id:
        return names.get(f"id:{student.canvas_id}")
    if student.sis_user_id:
        return names.get(f"sis:{student.sis_user_id}")
    if student.sis_login_id:
        return names.get(f"login:{student.sis_login_id}")
    return None


class CanvasPublisher(BulkPublisher[CanvasUser]):
    """Runs one ``CanvasJob`` against Canvas, recording every send in the ledger."""

    def __init__(self, job: CanvasJob, client: CanvasClient, ledger: Ledger) -> None:
        super().__init__(job, ledger)
        self.job: CanvasJob = job
        self.client = client
        self.course_id = job.settings.course_id

    async def run(self) -> tuple[list[PublishLine], int]:
        """Every student's line, and how many rows of an interrupted run were settled."""
        names = canvas_names(await self.client.students(self.course_id))
        pending = self.open_rows()
        if pending:
            await self._settle(pending)
        still_open = self.open_rows()
        self.unsettled = {r.student_id: self._open_reason(r) for r in still_open}
        current = await self._canvas_values() if self.job.dry_run else {}
        lines = await self.publish(lambda student: match_student(student, names), current)
        return lines, len(pending) - len(still_open)

    def unknown_detail(self, student: Student) -> str:
        for column, value in (
            ("canvas_id", student.canvas_id),
            ("sis_user_id", student.sis_user_id),
            ("sis_login_id", student.sis_login_id),
        ):
            if value:
                return f"no student with {column} {value!r} in the Canvas course"
        return "no canvas_id, sis_user_id or sis_login_id in the roster"

    async def _canvas_values(self) -> dict[str, str]:
        values = {}
        for sub in await self.client.submissions(self.course_id, self.job.assignment_id):
            if sub.score is not None:
                values[sub.user_id] = number_text(sub.score)
            elif sub.grade:
                values[sub.user_id] = sub.grade
        return values

    # sending ----------------------------------------------------------------------------
    async def send(self, batch: Sequence[tuple[Delivery, CanvasUser]]) -> list[Settled]:
        rows = self.begin(batch)
        outgoing: list[Outgoing] = []
        refused: list[Settled] = []
        for row, (delivery, _) in zip(rows, batch, strict=True):
            try:
                file_ids = await self._attachments(row, delivery)
            except (LmsUnreachableError, LmsUnauthorizedError):
                raise  # unanswered: the rows stay 'sending' for the next run to settle
            except LmsError as exc:
                refused.append(self.refused(row, f"the feedback page was not attached: {exc}"))
                continue
            outgoing.append(Outgoing(row, with_ref(delivery.comment, row.ref), file_ids))
        if not outgoing:
            return refused
        grade_data = {o.row.recipient: o.grade_entry() for o in outgoing}
        self.ledger.job_requested([o.row for o in outgoing])
        progress = await self.client.update_grades(
            self.course_id, self.job.assignment_id, grade_data
        )
        self.ledger.job_started([o.row for o in outgoing], progress.id)
        progress = await self.client.follow(progress)
        return refused + await self._after_job(outgoing, progress)

    async def _attachments(self, row: Publication, delivery: Delivery) -> tuple[str, ...]:
        """The feedback page uploaded for this comment, when asked for and the feedback is
        new or changed (a grade-only note does not repeat the page); its file id."""
        page = self.job.pages.get(row.student_id)
        if page is None or not delivery.feedback_changed:
            return ()
        upload = CommentFile(
            f"feedback-{self.job.assignment}.html", page.encode("utf-8"), "text/html"
        )
        file_id = await self.client.upload_comment_file(
            self.course_id, self.job.assignment_id, row.recipient, upload
        )
        return (file_id,)

    async def _after_job(
        self, outgoing: Sequence[Outgoing], progress: CanvasProgress
    ) -> list[Settled]:
        rows = [o.row for o in outgoing]
        if progress.workflow_state == "completed":
            self.ledger.sent(rows)
            return [(r.student_id, "sent", "") for r in rows]
        if not progress.done:
            return [
                (
                    r.student_id,
                    "pending",
                    f"Canvas job {progress.id} still running: run publish again",
                )
                for r in rows
            ]
        # a failed job may have reached some students: whoever carries the ref got it
        reached, missed = self._reached(rows, await self._comments())
        self.ledger.sent(reached)
        results: list[Settled] = [(r.student_id, "sent", "") for r in reached]
        by_row = {o.row.id: o for o in outgoing}
        for row in missed:
            results.append(await self._send_one(by_row[row.id], progress.message))
        return results

    async def _send_one(self, outgoing: Outgoing, why: str) -> Settled:
        row = outgoing.row
        try:
            await self.client.grade_one(
                self.course_id,
                self.job.assignment_id,
                row.recipient,
                posted_grade=row.value,
                comment=outgoing.text,
                file_ids=outgoing.file_ids,
            )
        except (LmsUnreachableError, LmsUnauthorizedError):
            raise  # unanswered: the row stays 'sending' for the next run to settle
        except LmsError as exc:
            return self.refused(row, str(exc))
        self.ledger.sent([row], f"one at a time after the bulk job failed: {why}".strip(": "))
        return row.student_id, "sent", ""

    # settling an interrupted run --------------------------------------------------------
    async def _settle(self, pending: Sequence[Publication]) -> None:
        """Settle the rows an interrupted run left: follow each recorded Progress; look
        for the comments of the rest. A bulk request that went out unanswered may have
        left a job queued in Canvas whose id was never learnt: its students are sent
        again only once QUEUED_GRACE has passed without their comment appearing."""
        by_job: dict[str | None, list[Publication]] = {}
        for row in pending:
            by_job.setdefault(row.job, []).append(row)
        unanswered = by_job.pop(REQUESTED, [])
        unknown: list[Publication] = list(by_job.pop(None, []))
        for job, rows in by_job.items():
            try:
                progress = await self.client.progress(str(job))
                if not self.job.dry_run:  # a dry run reads the job's state, never waits on it
                    progress = await self.client.follow(progress)
            except LmsError as exc:
                if exc.http_status != 404:
                    raise
                unknown += rows  # Canvas forgot the job: look for the comments instead
                continue
            if progress.workflow_state == "completed":
                self.ledger.sent(rows, "confirmed after an interrupted run")
            elif progress.done:
                unknown += rows
            # still running: left pending, and those students wait for the next run
        if not unknown and not unanswered:
            return
        reached, missed = self._reached([*unknown, *unanswered], await self._comments())
        self.ledger.sent(reached, "found in Canvas after an interrupted run")
        now = self.ledger.clock()
        waiting = [r for r in missed if r.job == REQUESTED and now - r.started_at < QUEUED_GRACE]
        self.ledger.failed(
            [r for r in missed if r not in waiting],
            "not in Canvas after an interrupted run; sent again",
        )

    @staticmethod
    def _open_reason(row: Publication) -> str:
        if row.job != REQUESTED:
            return "an earlier send is not confirmed yet"
        moment = row.started_at.astimezone(UTC)
        return (
            f"the request of {moment:%H:%M} UTC went unanswered and may still be queued in "
            f"Canvas; sent again after {moment + QUEUED_GRACE:%H:%M} UTC if it never arrives"
        )

    async def _comments(self) -> dict[str, CanvasSubmission]:
        subs = await self.client.submissions(self.course_id, self.job.assignment_id)
        return {s.user_id: s for s in subs}

    @staticmethod
    def _reached(
        rows: Sequence[Publication], subs: Mapping[str, CanvasSubmission]
    ) -> tuple[list[Publication], list[Publication]]:
        reached: list[Publication] = []
        missed: list[Publication] = []
        for row in rows:
            sub = subs.get(row.recipient)
            marker = f"ref {row.ref})"
            found = sub is not None and any(marker in c for c in sub.comments)
            (reached if found else missed).append(row)
        return reached, missed
