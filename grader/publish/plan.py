"""What each student gets from a publish: pure decisions over plain values.

The comment is the student's feedback as Markdown text, rendered from their
``StudentView`` (the one door: hidden tests by label only, no instructor notes), so a
comment never says more than the feedback page. Its SHA-256 is what the ledger keeps;
a student whose grade and feedback both match what the target last confirmed gets
nothing, a changed grade gets the new value and one comment that says what changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from grader.publish.ledger import LastSent
from grader.reports.excerpt import number_text
from grader.reports.feedback import feedback_view
from grader.reports.lms.sheet import graded
from grader.reports.student_view import StudentView
from grader.reports.templating import render

REF_FOOTER = "\n\n(sent by grader; ref {ref})"
"""Appended to every comment: the ledger's reference, found again after a crash."""


@dataclass(frozen=True)
class Delivery:
    """What one student should receive now (``value`` None: a comment only)."""

    student_id: str
    value: str | None
    comment: str
    comment_sha256: str
    old_value: str | None
    why: str
    feedback_changed: bool = True  # the feedback differs from what the target last confirmed


def feedback_text(view: StudentView, *, now: datetime) -> str:
    """The student's feedback as Markdown text (what `feedback/<id>.md` holds)."""
    return render("feedback.md.j2", view=feedback_view(view, now=now)).strip() + "\n"


def feedback_page(view: StudentView, *, now: datetime) -> str:
    """The student's feedback page (what `feedback/<id>.html` holds), for an attachment."""
    return render("feedback.html.j2", view=feedback_view(view, now=now))


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def grade_value(view: StudentView) -> str | None:
    """The grade as the LMS receives it ('82.5'), or None when the student is not graded."""
    grade = graded(view)
    return number_text(grade.score) if grade else None


def with_ref(comment: str, ref: str) -> str:
    """The comment as sent: the text and the ledger's reference."""
    return comment.rstrip("\n") + REF_FOOTER.format(ref=ref)


def plan_delivery(
    view: StudentView, feedback: str, last: LastSent, *, feedback_only: bool = False
) -> Delivery | None:
    """What ``view``'s student gets now, given what the target last confirmed; None: nothing.

    A student who is not graded gets nothing unless ``feedback_only`` (then the feedback,
    which says why, never a value).
    """
    digest = text_sha256(feedback)
    student_id = view.student.student_id
    value = None if feedback_only else grade_value(view)
    if not feedback_only and value is None:
        return None
    feedback_same = digest == last.comment_sha256
    if feedback_only or value == last.value:
        if feedback_same:
            return None
        why = "feedback" if feedback_only else "feedback changed"
        preface = "" if feedback_only or last.comment_sha256 is None else _updated_feedback(view)
        return Delivery(student_id, None, preface + feedback, digest, last.value, why)
    if last.value is None:
        # the feedback already went out alone (--feedback-only): one line with the grade
        text = _new_grade(view, value or "") if feedback_same else feedback
        return Delivery(student_id, value, text, digest, None, "new grade", not feedback_same)
    preface = _changed_grade(view, last.value, value or "")
    why = f"grade {last.value} -> {value}"
    return Delivery(
        student_id, value, preface + feedback, digest, last.value, why, not feedback_same
    )


def _changed_grade(view: StudentView, old: str, new: str) -> str:
    title = view.assignment.title or view.assignment.id
    out_of = number_text(view.assignment.max_points)
    return f"Your grade for {title} changed from {old} to {new} (out of {out_of}).\n\n"


def _new_grade(view: StudentView, value: str) -> str:
    title = view.assignment.title or view.assignment.id
    out_of = number_text(view.assignment.max_points)
    return f"Your grade for {title} is {value} (out of {out_of}); the feedback above stands.\n"


def _updated_feedback(view: StudentView) -> str:
    title = view.assignment.title or view.assignment.id
    return f"Your feedback for {title} was updated; your grade did not change.\n\n"
