"""`grader publish --to moodle`: grades and feedback through Moodle's web services.

Students are found with ``core_user_get_users_by_field`` by the identity the Moodle CSV
export uses (``moodle_identity``: the roster's ``email``, default, or ``sis_user_id`` as
Moodle's ``idnumber``); the unmatched are listed. Grades and the feedback comment go out
``BULK_SIZE`` students per ``mod_assign_save_grades`` call; a call Moodle refuses is
retried one student at a time, so one bad row never holds back the others.

Moodle keeps one feedback text per grade and a save overwrites it, so a send that a
killed run left open is simply sent again: nothing can appear twice. A changed grade's
feedback starts with the sentence saying what changed, as on Canvas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from grader.errors import LmsError, LmsUnauthorizedError, LmsUnreachableError
from grader.publish.ledger import LastSent, Ledger, Publication
from grader.publish.moodle_api import MoodleClient, MoodleGrade, MoodleUser
from grader.publish.plan import Delivery, grade_value, plan_delivery
from grader.publish.results import LineResult, PublishLine
from grader.reports.lms.moodle import IDENTITIES
from grader.reports.student_view import StudentView

BULK_SIZE = 50
FIELDS = {"email": "email", "idnumber": "idnumber"}  # moodle_identity -> the user field


@dataclass(frozen=True)
class MoodleJob:
    assignment_id: str  # Moodle's assign instance id
    identity: str  # "email" or "idnumber"
    target: str
    assignment: str
    views: tuple[StudentView, ...]
    feedback: Mapping[str, str]
    dry_run: bool = False


class MoodlePublisher:
    def __init__(self, job: MoodleJob, client: MoodleClient, ledger: Ledger) -> None:
        self.job = job
        self.client = client
        self.ledger = ledger

    async def run(self) -> tuple[list[PublishLine], int]:
        pending = (
            [] if self.job.dry_run else self.ledger.pending(self.job.target, self.job.assignment)
        )
        self.ledger.failed(
            pending, "left open by an interrupted run; Moodle overwrites, sent again"
        )
        identity = IDENTITIES[self.job.identity]
        wanted = sorted({identity.of(v.student) for v in self.job.views} - {""})
        users = await self.client.users_by_field(FIELDS[self.job.identity], wanted)
        current = await self.client.grades(self.job.assignment_id) if self.job.dry_run else {}
        last = self.ledger.last_sent(self.job.target, self.job.assignment)
        lines: dict[str, PublishLine] = {}
        outgoing: list[tuple[Delivery, MoodleUser]] = []
        for view in self.job.views:
            student_id = view.student.student_id
            user = users.get(identity.of(view.student))
            old = last[student_id].value if student_id in last else None
            if user is not None and self.job.dry_run:
                old = current.get(user.id, old)
            result, detail = self._decide(view, user, last)
            if isinstance(detail, Delivery) and user is not None:
                outgoing.append((detail, user))
            why = detail.why if isinstance(detail, Delivery) else detail
            new = grade_value(view) or ""
            lines[student_id] = PublishLine(
                student_id, view.student.name, old or "", new, result, why
            )
        for start in range(0, len(outgoing), BULK_SIZE):
            for student_id, result, why in await self._send(outgoing[start : start + BULK_SIZE]):
                lines[student_id] = replace(
                    lines[student_id], result=result, detail=why or lines[student_id].detail
                )
        return [lines[v.student.student_id] for v in self.job.views], len(pending)

    def _decide(
        self, view: StudentView, user: MoodleUser | None, last: Mapping[str, LastSent]
    ) -> tuple[LineResult, str | Delivery]:
        value = grade_value(view)
        if value is None:
            return "not graded", view.reason
        if user is None:
            field = IDENTITIES[self.job.identity].roster_field
            found = getattr(view.student, field)
            return (
                "unknown",
                f"no Moodle user with {FIELDS[self.job.identity]} {found!r}"
                if found
                else f"no {field} in the roster",
            )
        student_id = view.student.student_id
        delivery = plan_delivery(
            view, self.job.feedback[student_id], last.get(student_id, LastSent())
        )
        if delivery is None:
            return "unchanged", ""
        # Moodle keeps the feedback with the grade: a new text goes with the (same) grade
        delivery = replace(delivery, value=value)
        return ("would send", delivery.why) if self.job.dry_run else ("pending", delivery)

    async def _send(
        self, batch: Sequence[tuple[Delivery, MoodleUser]]
    ) -> list[tuple[str, LineResult, str]]:
        rows: list[Publication] = []
        with self.ledger.state.transaction():
            for delivery, user in batch:
                rows.append(
                    self.ledger.begin(
                        self.job.target,
                        self.job.assignment,
                        delivery.student_id,
                        recipient=user.id,
                        value=delivery.value,
                        comment_sha256=delivery.comment_sha256,
                    )
                )
        grades = [
            MoodleGrade(user.id, delivery.value or "", delivery.comment) for delivery, user in batch
        ]
        try:
            await self.client.save_grades(self.job.assignment_id, grades)
        except (LmsUnreachableError, LmsUnauthorizedError):
            raise  # the rows stay open; the next run sends them again (an overwrite)
        except LmsError:
            return [
                await self._send_one(row, grade) for row, grade in zip(rows, grades, strict=True)
            ]
        self.ledger.sent(rows)
        return [(row.student_id, "sent", "") for row in rows]

    async def _send_one(self, row: Publication, grade: MoodleGrade) -> tuple[str, LineResult, str]:
        try:
            await self.client.save_grades(self.job.assignment_id, [grade])
        except (LmsUnreachableError, LmsUnauthorizedError):
            raise
        except LmsError as exc:
            self.ledger.failed([row], str(exc))
            return row.student_id, "failed", str(exc)
        self.ledger.sent([row])
        return row.student_id, "sent", ""
