"""`grader publish --to moodle`: grades and feedback through Moodle's web services.

Students are found with ``core_user_get_users_by_field`` by the identity the Moodle CSV
export uses (``moodle_identity``: the roster's ``email``, default, or ``sis_user_id`` as
Moodle's ``idnumber``); the unmatched are listed. Grades and the feedback comment go out
``BULK_SIZE`` students per ``mod_assign_save_grades`` call; a call Moodle refuses is
retried one student at a time, so one bad row never holds back the others.

Moodle keeps one feedback text per grade and a save overwrites it, so a send that a
killed run left open is simply sent again: nothing can appear twice. A changed grade's
feedback starts with the sentence saying what changed, as on Canvas.

With ``[lms.moodle] attach_feedback``, every save also carries the student's feedback
page as the grade's feedback file: uploaded to a draft area first, named in the save,
and replacing the files that grade had (so it is never there twice). A page that cannot
be uploaded holds back that student's grade and text (``failed``) until the next publish.
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
        outgoing: list[tuple[Publication, MoodleGrade]] = []
        refused: list[Settled] = []
        for row, (delivery, user) in zip(rows, batch, strict=True):
            try:
                draft = await self._attachment(row)
            except (LmsUnreachableError, LmsUnauthorizedError):
                raise  # the rows stay open; the next run sends them again (an overwrite)
            except LmsError as exc:
                refused.append(self.refused(row, f"the feedback page was not attached: {exc}"))
                continue
            grade = MoodleGrade(user.id, delivery.value or "", delivery.comment, draft)
            outgoing.append((row, grade))
        if not outgoing:
            return refused
        try:
            await self.client.save_grades(self.job.assignment_id, [g for _, g in outgoing])
        except (LmsUnreachableError, LmsUnauthorizedError):
            raise  # the rows stay open; the next run sends them again (an overwrite)
        except LmsError:
            return refused + [await self._send_one(row, grade) for row, grade in outgoing]
        self.ledger.sent([row for row, _ in outgoing])
        return refused + [(row.student_id, "sent", "") for row, _ in outgoing]

    async def _attachment(self, row: Publication) -> str | None:
        """The student's feedback page in a new draft area, when asked for: its itemid."""
        page = self.job.pages.get(row.student_id)
        if page is None:
            return None
        name = f"feedback-{self.job.assignment}.html"
        return await self.client.upload_draft(name, page.encode("utf-8"), "text/html")

    async def _send_one(self, row: Publication, grade: MoodleGrade) -> Settled:
        try:
            await self.client.save_grades(self.job.assignment_id, [grade])
        except (LmsUnreachableError, LmsUnauthorizedError):
            raise
        except LmsError as exc:
            return self.refused(row, str(exc))
        self.ledger.sent([row])
        return row.student_id, "sent", ""
