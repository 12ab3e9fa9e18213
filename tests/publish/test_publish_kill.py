"""A `python -m grader publish` SIGKILLed halfway, then run again: nothing is posted twice.

Three moments: while Canvas's bulk job is still queued (the ledger holds its Progress
id); after Canvas applied the request but before its answer arrived (no id: the next run
finds each student's comment by the reference it carries); and after Canvas queued the
job but before its answer arrived (no id, no comment yet: the next run waits for the job
instead of sending again).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.publishing import PublishOptions, publish
from tests.support.fake_canvas import TOKEN, FakeCanvas
from tests.support.publish_kit import make_course, store_grades
from tests.support.served import grader_env

SCORES: dict[str, float | None] = {"ada": 10, "bob": 7, "cyd": 4, "fay": 6}
REACHED = ("101", "102", "103", "106")


async def no_wait(seconds: float) -> None:
    return None


def publish_then_kill(course: Path, canvas: FakeCanvas, *, after_job: bool) -> int:
    """Start a publish; SIGKILL it once Canvas has the request (and, if ``after_job``, once
    the ledger holds the job's id: the grader is following the Progress then)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "grader", "publish", str(course), "-a", "hw1", "--to", "canvas"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**grader_env(), "CANVAS_TOKEN": TOKEN},
        start_new_session=True,
    )
    try:
        assert canvas.post_seen.wait(120), "the publish never reached update_grades"
        deadline = time.monotonic() + 60
        while after_job and not any(job and job.isdigit() for _, job in open_rows(course)):
            assert time.monotonic() < deadline, "the job id never reached the ledger"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        return process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def open_rows(course: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(course / ".grader" / "state.sqlite3") as db:
        return db.execute(
            "SELECT state, job FROM publications WHERE state = 'sending' ORDER BY id"
        ).fetchall()


@pytest.mark.crash
@pytest.mark.parametrize("moment", ["job queued", "answer lost"])
def test_publish_killed_halfway_resumes_without_double_posting(
    tmp_path: Path, canvas: FakeCanvas, moment: str
) -> None:
    course = make_course(tmp_path, canvas.url)
    store_grades(course, SCORES)
    if moment == "job queued":
        canvas.hold()
    else:
        canvas.hang_posts()

    assert publish_then_kill(course, canvas, after_job=moment == "job queued") == -signal.SIGKILL
    rows = open_rows(course)
    assert len(rows) == 4  # the intent was on disk before the request
    assert {job for _, job in rows} == ({"1"} if moment == "job queued" else {"requested"})
    canvas.release()  # Canvas goes on with what it accepted, whoever is listening

    report = publish(
        PublishOptions(course, "hw1", "canvas"), environ={"CANVAS_TOKEN": TOKEN}, sleep=no_wait
    )

    assert report.settled == 4
    assert {line.result for line in report.lines if line.student_id in SCORES} == {"unchanged"}
    assert canvas.count("POST", "update_grades$") == 1
    assert len(canvas.jobs) == 1
    for uid in REACHED:
        assert len(canvas.comments(uid)) == 1, uid
    assert open_rows(course) == []


@pytest.mark.crash
def test_a_job_queued_unanswered_is_waited_for_not_sent_again(
    tmp_path: Path, canvas: FakeCanvas
) -> None:
    course = make_course(tmp_path, canvas.url)
    store_grades(course, SCORES)
    canvas.queue_unanswered()  # Canvas queues the job; its id never reaches the grader

    assert publish_then_kill(course, canvas, after_job=False) == -signal.SIGKILL
    assert {job for _, job in open_rows(course)} == {"requested"}
    canvas.release()

    waiting = publish(
        PublishOptions(course, "hw1", "canvas"), environ={"CANVAS_TOKEN": TOKEN}, sleep=no_wait
    )

    assert waiting.settled == 0
    lines = [line for line in waiting.lines if line.student_id in SCORES]
    assert {line.result for line in lines} == {"pending"}
    assert all("may still be queued in Canvas" in line.detail for line in lines)
    assert waiting.exit_code == 1
    assert canvas.count("POST", "update_grades$") == 1  # nothing sent again
    assert all(canvas.comments(uid) == [] for uid in REACHED)

    canvas.run_queued()  # Canvas's job runner gets to it
    later = datetime.now(UTC) + timedelta(hours=1)  # past the grace: found, not resent
    report = publish(
        PublishOptions(course, "hw1", "canvas"),
        environ={"CANVAS_TOKEN": TOKEN},
        sleep=no_wait,
        clock=lambda: later,
    )

    assert report.settled == 4
    assert {line.result for line in report.lines if line.student_id in SCORES} == {"unchanged"}
    assert canvas.count("POST", "update_grades$") == 1
    for uid in REACHED:
        assert len(canvas.comments(uid)) == 1, uid
    assert open_rows(course) == []
