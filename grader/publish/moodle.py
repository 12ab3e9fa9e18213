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

from collections.abc import Sequence
from dataclasses import dataclass, replace

from grader.errors import LmsError, LmsUnauthorizedError, LmsUnreachableError
from grader.publish.bulk import BulkPublisher, PublishJob, Settled
from grader.publish.ledger import Ledger, Publication
from grader.publish.moodle_api import MoodleClient, MoodleGrade, MoodleUser
from grader.publish.plan import Delivery, grade_value
from grader.publish.results import PublishLine
from grader.reports.lms.moodle import IDENTITIES
from grader.reports.student_view import StudentView
from grader.roster import Student

FIELDS = {"email": "email", "idnumber": "idnumber"}  # moodle_identity -> the user field


@dataclass(frozen=True, kw_only=True)
class MoodleJob(PublishJob):
    assignment_id: str  # Moodle's assign instance id
    identity: str  # "email" or "idnumber"


class MoodlePublisher(BulkPublisher[MoodleUser]):
    def __init__(self, job: MoodleJob, client: MoodleClient, ledger: Ledger) -> None:
        super().__init__(job, ledger)
        self.job: MoodleJob = job
        self.client = client

    async def run(self) -> tuple[list[PublishLine], int]:
        pending = self.open_rows()
        self.ledger.failed(
            pending, "left open by an interrupted run; Moodle overwrites, sent again"
        )
        identity = IDENTITIES[self.job.identity]
        wanted = sorted({identity.of(v.student) for v in self.job.views} - {""})
        users = await self.client.users_by_field(FIELDS[self.job.identity], wanted)
        current = await self.client.grades(self.job.assignment_id) if self.job.dry_run else {}
        lines = await self.publish(lambda student: users.get(identity.of(student)), current)
        return lines, len(pending)

    def unknown_detail(self, student: Student) -> str:
        field = IDENTITIES[self.job.identity].roster_field
        found = getattr(student, field)
        if found:
            return f"no Moodle user with {FIELDS[self.job.identity]} {found!r}"
        return f"no {field} in the roster"

    def delivered(self, delivery: Delivery, view: StudentView) -> Delivery:
        # Moodle keeps the feedback with the grade: a new text goes with the (same) grade
        return replace(delivery, value=grade_value(view))

    async def send(self, batch: Sequence[tuple[Delivery, MoodleUser]]) -> list[Settled]:
        rows = self.begin(batch)
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

    async def _send_one(self, row: Publication, grade: MoodleGrade) -> Settled:
        try:
            await self.client.save_grades(self.job.assignment_id, [grade])
        except (LmsUnreachableError, LmsUnauthorizedError):
            raise
        except LmsError as exc:
            return self.refused(row, str(exc))
        self.ledger.sent([row])
        return row.student_id, "sent", ""
