"""What every LMS publish does for each student, whatever the LMS: ``BulkPublisher``.

Each student gets one line: not graded (nothing, never a zero), unknown to the LMS,
waiting for an earlier send to be confirmed, unchanged, or a ``Delivery`` planned
(``plan.py``) against what the LMS last confirmed. The deliveries go out ``BULK_SIZE``
students at a time through the LMS's own ``send``; each batch's ledger rows are written
in one transaction before its request, and a student the LMS refuses is recorded
``failed`` with the LMS's reason (the next publish tries again).

An LMS driver (``canvas.py``, ``moodle.py``) says how its users are found, why a roster
row matches nobody, and how a batch is sent and confirmed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Generic, Protocol, Self, TypeVar

from grader.publish.ledger import LastSent, Ledger, Publication
from grader.publish.plan import Delivery, grade_value, plan_delivery
from grader.publish.results import LineResult, PublishLine
from grader.reports.student_view import StudentView
from grader.roster import Student

BULK_SIZE = 50  # students per bulk request


class LmsUser(Protocol):
    @property
    def id(self) -> str: ...


UserT = TypeVar("UserT", bound=LmsUser)
Settled = tuple[str, LineResult, str]
"""What became of one student's send: student id, result, detail."""


@dataclass(frozen=True, kw_only=True)
class PublishJob:
    """One assignment's publish to one LMS: who and what (each LMS adds where)."""

    target: str  # the ledger's key for this LMS, course and assignment
    assignment: str  # our assignment id
    views: tuple[StudentView, ...]
    feedback: Mapping[str, str]  # student id -> feedback text; no entry: nothing to send
    dry_run: bool = False  # plan against a rehearsal of the ledger (rolled back), send nothing
    feedback_only: bool = False
    pages: Mapping[str, str] = field(default_factory=dict)  # student id -> page to attach

    @classmethod
    def extending(cls, base: PublishJob, **where: Any) -> Self:
        """This target's job: ``base``'s who and what, and ``where`` (the target's own
        fields)."""
        return cls(**{f.name: getattr(base, f.name) for f in fields(PublishJob)}, **where)


class BulkPublisher(ABC, Generic[UserT]):
    """The per-student decisions and the batching shared by the LMS drivers."""

    def __init__(self, job: PublishJob, ledger: Ledger) -> None:
        self.job = job
        self.ledger = ledger
        self.unsettled: dict[str, str] = {}  # student id -> why an earlier send is open

    @abstractmethod
    def unknown_detail(self, student: Student) -> str:
        """Why a roster row matches no user of the LMS."""

    @abstractmethod
    async def send(self, batch: Sequence[tuple[Delivery, UserT]]) -> list[Settled]:
        """Send one batch (BULK_SIZE at most) and settle its ledger rows."""

    def delivered(self, delivery: Delivery, view: StudentView) -> Delivery:
        """What the LMS is sent for a planned delivery (the plan itself by default)."""
        return delivery

    def open_rows(self) -> list[Publication]:
        """Rows an interrupted run left ``sending`` (a dry run settles them in a rehearsal
        of the ledger, so its table says what a real run would do)."""
        return self.ledger.pending(self.job.target, self.job.assignment)

    async def publish(
        self, find: Callable[[Student], UserT | None], current: Mapping[str, str]
    ) -> list[PublishLine]:
        """Every student's line, the deliveries sent; ``current``: the LMS's values by user
        id, shown as the old value (read for a dry run)."""
        last = self.ledger.last_sent(self.job.target, self.job.assignment)
        lines: dict[str, PublishLine] = {}
        outgoing: list[tuple[Delivery, UserT]] = []
        for view in self.job.views:
            student_id = view.student.student_id
            user = find(view.student)
            old = last[student_id].value if student_id in last else None
            if user is not None:
                old = current.get(user.id, old)
            new = "" if self.job.feedback_only else (grade_value(view) or "")
            result, detail = self.decide(view, user, last)
            if isinstance(detail, Delivery) and user is not None:
                outgoing.append((detail, user))
            why = detail.why if isinstance(detail, Delivery) else detail
            lines[student_id] = PublishLine(
                student_id, view.student.name, old or "", new, result, why
            )
        for start in range(0, len(outgoing), BULK_SIZE):
            for student_id, result, why in await self.send(outgoing[start : start + BULK_SIZE]):
                lines[student_id] = replace(
                    lines[student_id], result=result, detail=why or lines[student_id].detail
                )
        return [lines[v.student.student_id] for v in self.job.views]

    def decide(
        self, view: StudentView, user: UserT | None, last: Mapping[str, LastSent]
    ) -> tuple[LineResult, str | Delivery]:
        """What happens to one student: a result and why (a Delivery when one goes out)."""
        student_id = view.student.student_id
        if student_id not in self.job.feedback or (
            grade_value(view) is None and not self.job.feedback_only
        ):
            return "not graded", view.reason
        if user is None:
            return "unknown", self.unknown_detail(view.student)
        if student_id in self.unsettled:
            return "pending", self.unsettled[student_id]
        delivery = plan_delivery(
            view,
            self.job.feedback[student_id],
            last.get(student_id, LastSent()),
            feedback_only=self.job.feedback_only,
        )
        if delivery is None:
            return "unchanged", ""
        delivery = self.delivered(delivery, view)
        if self.job.dry_run:
            return "would send", delivery.why
        return "pending", delivery

    def begin(self, batch: Sequence[tuple[Delivery, UserT]]) -> list[Publication]:
        """The batch's ledger rows, written (in one transaction) before its request."""
        with self.ledger.state.transaction():
            return [
                self.ledger.begin(
                    self.job.target,
                    self.job.assignment,
                    delivery.student_id,
                    recipient=user.id,
                    value=delivery.value,
                    comment_sha256=delivery.comment_sha256,
                )
                for delivery, user in batch
            ]

    def refused(self, row: Publication, reason: str) -> Settled:
        """The LMS refused one student's send: recorded ``failed``, tried again next time."""
        self.ledger.failed([row], reason)
        return row.student_id, "failed", reason
