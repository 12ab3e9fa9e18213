"""A small course with stored grades, for the publish suites: no engine run needed.

Grades go into the real state database as the pipeline stores them (``StudentOutcome``
JSON in ``grades``); each graded student has two visible tests and one hidden test whose
name (``test_hidden_secret_overflow``) and message must never reach a student.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grader.codec import to_json
from grader.config import load_course
from grader.publish.results import PublishLine, PublishReport
from grader.publishing import PublishOptions, publish
from grader.records import NO_PENALTY, Grade, Outcome, StudentOutcome, TestScore
from grader.roster import load_roster
from grader.state import open_state

HIDDEN_NAME = "test_hidden_secret_overflow"
HIDDEN_MESSAGE = "assert add(2**63, 1) == 9223372036854775809"
DEADLINE = datetime(2026, 10, 1, 23, 59, tzinfo=UTC)

# student id -> roster identity columns (canvas_id, sis_user_id, sis_login_id)
ROSTER = {
    "ada": ("101", "", ""),
    "bob": ("", "SIS-102", ""),
    "cyd": ("", "", "cyd@uni.edu"),
    "dee": ("104", "", ""),
    "eve": ("999", "", ""),  # Canvas does not know this one
    "fay": ("106", "", ""),
}

CANVAS_USERS = [
    {"id": "101", "name": "Ada", "sis_user_id": "SIS-101", "login_id": "ada@uni.edu"},
    {"id": "102", "name": "Bob", "sis_user_id": "SIS-102", "login_id": "bob@uni.edu"},
    {"id": "103", "name": "Cyd", "sis_user_id": None, "login_id": "cyd@uni.edu"},
    {"id": "104", "name": "Dee", "sis_user_id": "SIS-104", "login_id": "dee@uni.edu"},
    {"id": "106", "name": "Fay", "sis_user_id": "SIS-106", "login_id": "fay@uni.edu"},
    {"id": "107", "name": "Gus", "sis_user_id": "SIS-107", "login_id": "gus@uni.edu"},
]
CANVAS_ID = {"ada": "101", "bob": "102", "cyd": "103", "dee": "104", "fay": "106"}

MOODLE_USERS = [
    {"id": 201, "username": "ada", "email": "ADA@uni.edu", "idnumber": "S1"},
    {"id": 202, "username": "bob", "email": "bob@uni.edu", "idnumber": "SIS-102"},
    {"id": 203, "username": "cyd", "email": "cyd@uni.edu", "idnumber": ""},
    {"id": 204, "username": "dee", "email": "dee@uni.edu", "idnumber": ""},
    {"id": 206, "username": "fay", "email": "fay@uni.edu", "idnumber": ""},
]
MOODLE_ID = {"ada": "201", "bob": "202", "cyd": "203", "fay": "206"}

SCORES: dict[str, float | None] = {"ada": 10, "bob": 7, "cyd": 4, "dee": None, "eve": 8, "fay": 6}
"""dee is not graded (infrastructure); eve is graded but unknown to the LMS."""


class Waits:
    """An injected ``sleep``: every wait is recorded, none is slept."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def run_publish(
    course: Path,
    to: str,
    environ: Mapping[str, str] | None = None,
    waits: Waits | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    **options: object,
) -> PublishReport:
    """``publish`` of hw1 to ``to`` with the token(s) in ``environ`` and no real waits
    (``clock``: the moment the ledger and the feedback see, now by default)."""
    return publish(
        PublishOptions(course, "hw1", to, **options),  # type: ignore[arg-type]
        environ=environ or {},
        sleep=waits or Waits(),
        clock=clock or (lambda: datetime.now(UTC)),
    )


def results(report: PublishReport) -> dict[str, str]:
    """Each student's result."""
    return {line.student_id: line.result for line in report.lines}


def line(report: PublishReport, student_id: str) -> PublishLine:
    return next(line for line in report.lines if line.student_id == student_id)


def make_course(
    root: Path, canvas_url: str, *, extra: str = "", repos: dict[str, str] | None = None
) -> Path:
    """The course folder; ``repos`` fills the roster's repo column (student id -> address)."""
    course = root / "course"
    (course / "projects" / "hw1").mkdir(parents=True)
    (course / "projects" / "hw1" / "test_hw1.py").write_text(
        f"def {HIDDEN_NAME}():\n    {HIDDEN_MESSAGE}\n"
    )
    (course / "course.toml").write_text(
        '[course]\nname = "Publish 101"\n\n'
        f'[lms.canvas]\nurl = "{canvas_url}"\ncourse_id = 7\n\n'
        f"{extra}"
        "[assignments.hw1]\n"
        'title = "Homework 1"\n'
        f"deadline = {DEADLINE:%Y-%m-%dT%H:%M:%SZ}\n"
        'repo = "repos/{student_id}"\n'
        "max_points = 10\n"
        "[assignments.hw1.tests]\n"
        '"test_public_*" = 3\n'
        '"test_hidden_*" = { points = 4, visibility = "hidden" }\n'
        "[assignments.hw1.lms]\n"
        'canvas_assignment_id = "5"\n'
    )
    lines = ["student_id,name,email,canvas_id,sis_user_id,sis_login_id,repo"]
    lines += [
        f"{sid},Student {sid},{sid}@uni.edu,{a},{b},{c},{(repos or {}).get(sid, '')}"
        for sid, (a, b, c) in ROSTER.items()
    ]
    (course / "roster.csv").write_text("\n".join(lines) + "\n")
    return course


def store_grades(course: Path, scores: dict[str, float | None]) -> None:
    """Store one run's outcomes: a score (hidden test passed when the score is 10), or None
    for a student who is not graded (infrastructure)."""
    config = load_course(course)
    assignment = config.assignment("hw1")
    roster = {s.student_id: s for s in load_roster(config.roster)}
    with open_state(config.state_dir) as state:
        run = state.start_run(engine="test", assignments=["hw1"])
        for student_id, score in scores.items():
            outcome = outcome_for(roster[student_id], assignment, score)
            state.record_grade(
                run,
                "hw1",
                student_id,
                status=outcome.status,
                score=score,
                outcome_json=to_json(outcome),
            )
        state.finish_run(run, status="done", summary="")


def outcome_for(student, assignment, score):  # type: ignore[no-untyped-def]
    blank = StudentOutcome.blank(student, assignment)
    if score is None:
        return blank.not_graded(Outcome.INFRASTRUCTURE, "the engine failed three times")
    hidden_ok = score >= 10
    tests = (
        TestScore("test_public_add", "ok", 3, 3),
        TestScore(
            "test_public_mul",
            "ok" if score >= 6 else "failure",
            3,
            3 if score >= 6 else 0,
            message="mul(2, 3) returned 5",
        ),
        TestScore(
            HIDDEN_NAME,
            "ok" if hidden_ok else "failure",
            4,
            4 if hidden_ok else 0,
            visibility="hidden",
            message=HIDDEN_MESSAGE,
        ),
    )
    grade = Grade(
        score,
        10,
        score,
        0,
        NO_PENALTY,
        "test points",
        tests,
        warnings=(f"{HIDDEN_NAME} is for the instructor",),
    )
    return StudentOutcome(
        student=student,
        assignment=assignment,
        status="graded",
        outcome=Outcome.OK if score >= 10 else Outcome.FAIL,
        reason="",
        commit="0123456789abcdef0123456789abcdef01234567",
        commit_reason="last commit before the deadline",
        committed_at=DEADLINE - timedelta(hours=2),
        lateness=timedelta(),
        grade=grade,
        submission_id=1,
        engine_status="ok",
        build_output="",
        debug_log=f"debug: running {HIDDEN_NAME}",
        archive_sha256="f" * 64,
        attempts=1,
    )
