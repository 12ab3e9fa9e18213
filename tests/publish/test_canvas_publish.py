"""`grader publish --to canvas` against a Canvas on loopback (tests/support/fake_canvas.py).

Real HTTP, real SQLite, real pagination, throttling and Progress jobs; only the waits are
injected (every backoff is recorded instead of slept).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.errors import LmsUnreachableError
from grader.overriding import set_override
from grader.publish.canvas_api import RETRY_POLICY
from grader.publish.results import PublishReport
from tests.support.fake_canvas import TOKEN, FakeCanvas, serve_canvas
from tests.support.publish_kit import (
    CANVAS_ID,
    HIDDEN_MESSAGE,
    HIDDEN_NAME,
    SCORES,
    Waits,
    make_course,
    results,
    run_publish,
    store_grades,
)
from tests.support.served import free_port


@pytest.fixture
def course(tmp_path: Path, canvas: FakeCanvas) -> Path:
    course = make_course(tmp_path, canvas.url)
    store_grades(course, SCORES)
    return course


GRACE = timedelta(minutes=31)  # past canvas.QUEUED_GRACE
SENT = ("ada", "bob", "cyd", "fay")  # graded and known to Canvas


def run(course: Path, waits: Waits | None = None, **options: object) -> PublishReport:
    return run_publish(course, "canvas", {"CANVAS_TOKEN": TOKEN}, waits, **options)


def test_publish_sends_grades_and_feedback_in_one_bulk_job(
    course: Path, canvas: FakeCanvas
) -> None:
    report = run(course)

    assert results(report) == {
        "ada": "sent",
        "bob": "sent",
        "cyd": "sent",
        "dee": "not graded",
        "eve": "unknown",
        "fay": "sent",
    }
    assert report.exit_code == 1  # eve is listed; the others went out
    eve = next(line for line in report.lines if line.student_id == "eve")
    assert "canvas_id '999'" in eve.detail
    assert canvas.count("POST", "update_grades$") == 1
    assert canvas.count("PUT", "") == 0
    assert canvas.count("GET", "/users$") == 3  # six students, two a page: Link followed
    assert {canvas.grade(CANVAS_ID[s]) for s in ("ada", "bob", "cyd", "fay")} == {
        "10",
        "7",
        "4",
        "6",
    }
    # matched by canvas_id, sis_user_id (bob) and sis_login_id (cyd)
    assert canvas.grade("102") == "7"
    assert canvas.grade("103") == "4"


def test_not_graded_student_gets_nothing_never_a_zero(course: Path, canvas: FakeCanvas) -> None:
    run(course)
    assert canvas.grade(CANVAS_ID["dee"]) is None
    assert canvas.comments(CANVAS_ID["dee"]) == []


def test_comment_is_the_student_feedback_without_hidden_material(
    course: Path, canvas: FakeCanvas
) -> None:
    run(course)
    (comment,) = canvas.comments(CANVAS_ID["bob"])
    assert "Score: 7 / 10" in comment
    assert "hidden test 1" in comment
    assert "mul(2, 3) returned 5" in canvas.comments("103")[0]  # a visible test's message
    for secret in (HIDDEN_NAME, HIDDEN_MESSAGE, "secret_overflow", "for the instructor", "debug"):
        assert secret not in comment


def test_second_publish_with_nothing_changed_sends_nothing(
    course: Path, canvas: FakeCanvas
) -> None:
    run(course)
    requests_before = canvas.count("POST", "") + canvas.count("PUT", "")

    again = run(course)

    assert canvas.count("POST", "") + canvas.count("PUT", "") == requests_before
    assert {r for s, r in results(again).items() if s not in ("dee", "eve")} == {"unchanged"}
    assert all(len(canvas.comments(uid)) == 1 for uid in ("101", "102", "103", "106"))


def test_changed_grade_updates_value_and_adds_one_comment_saying_what_changed(
    course: Path, canvas: FakeCanvas
) -> None:
    run(course)
    store_grades(course, {"bob": 9})

    report = run(course)

    assert results(report)["bob"] == "sent"
    bob = next(line for line in report.lines if line.student_id == "bob")
    assert (bob.old, bob.new, bob.detail) == ("7", "9", "grade 7 -> 9")
    assert results(report)["ada"] == "unchanged"
    assert canvas.grade("102") == "9"
    _, second = canvas.comments("102")
    assert second.startswith("Your grade for Homework 1 changed from 7 to 9 (out of 10).")
    assert "Score: 9 / 10" in second
    assert len(canvas.comments("101")) == 1


def test_dry_run_shows_old_and_new_values_and_changes_nothing(
    course: Path, canvas: FakeCanvas
) -> None:
    run(course)
    store_grades(course, {"bob": 9})
    writes = canvas.count("POST", "") + canvas.count("PUT", "")

    dry = run(course, dry_run=True)

    assert canvas.count("POST", "") + canvas.count("PUT", "") == writes
    bob = next(line for line in dry.lines if line.student_id == "bob")
    assert (bob.old, bob.new, bob.result) == ("7", "9", "would send")
    assert results(dry)["ada"] == "unchanged"
    assert results(run(course))["bob"] == "sent"  # the dry run recorded nothing


def test_throttling_storm_backs_off_and_posts_each_grade_once(
    course: Path, canvas: FakeCanvas, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canvas.throttle(4)  # the first reads
    waits = Waits()
    run(course, waits)
    canvas.throttle(3, method="POST")  # a grade change's bulk request, refused three times
    store_grades(course, {"ada": 8})

    report = run(course, waits)

    assert results(report)["ada"] == "sent"
    assert len(canvas.jobs) == 2  # one job per publish: no refused request ran
    assert canvas.count("POST", "update_grades$") == 2 + 3
    assert len(canvas.comments("101")) == 2
    assert len([w for w in waits.seconds if w >= 0.5]) >= 7  # a backoff for each refusal
    assert "throttled, retrying" in caplog.text
    assert TOKEN not in caplog.text


def test_dropped_bulk_request_is_waited_for_then_sent_once(
    course: Path, canvas: FakeCanvas
) -> None:
    canvas.drop_posts(1)  # the connection closes: did Canvas take it? the client cannot know
    with pytest.raises(LmsUnreachableError):
        run(course)
    assert canvas.jobs == {}

    waiting = run(course)  # a job Canvas queued may still run: nothing is sent again yet

    assert waiting.settled == 0
    assert results(waiting)["ada"] == "pending"
    assert canvas.count("POST", "update_grades$") == 1

    report = run_publish(
        course, "canvas", {"CANVAS_TOKEN": TOKEN}, clock=lambda: datetime.now(UTC) + GRACE
    )

    assert report.settled == 4  # looked for in Canvas past the grace, not found: sent again
    assert results(report)["ada"] == "sent"
    assert canvas.count("POST", "update_grades$") == 2
    for uid in ("101", "102", "103", "106"):
        assert len(canvas.comments(uid)) == 1, uid


def test_low_rate_limit_bucket_slows_requests_down(course: Path, canvas: FakeCanvas) -> None:
    waits = Waits()
    canvas.requests.extend([("GET", "/warm-up")] * 60)  # the bucket is nearly empty now
    run(course, waits)
    assert waits.seconds and min(waits.seconds) >= 1.0


def test_failed_bulk_job_reaches_the_rest_one_at_a_time_without_double_posting(
    course: Path, canvas: FakeCanvas
) -> None:
    canvas.fail_jobs(1, reach=2)  # the job reaches two students, then fails

    report = run(course)

    assert {r for s, r in results(report).items() if s not in ("dee", "eve")} == {"sent"}
    assert canvas.count("PUT", "/submissions/") == 2
    for uid in ("101", "102", "103", "106"):
        assert len(canvas.comments(uid)) == 1, uid
    assert run(course).exit_code == 1  # eve still unknown; nothing else to send
    assert canvas.count("PUT", "/submissions/") == 2


def test_feedback_only_sends_comments_and_no_grades(course: Path, canvas: FakeCanvas) -> None:
    report = run(course, feedback_only=True)

    assert results(report)["ada"] == "sent"
    assert results(report)["dee"] == "not graded"  # no grade and no preview: nothing
    assert canvas.comments("104") == []
    assert "Score: 10 / 10" in canvas.comments("101")[0]
    assert all(canvas.grade(uid) is None for uid in ("101", "102", "103", "106"))
    graded = run(course)
    assert results(graded)["ada"] == "sent"  # the grade itself goes out now
    assert canvas.grade("101") == "10"
    _, grade_line = canvas.comments("101")  # the same feedback is not sent again
    assert grade_line.startswith("Your grade for Homework 1 is 10 (out of 10)")


def test_only_the_chosen_students_are_published(course: Path, canvas: FakeCanvas) -> None:
    report = run(course, students=("bob",))
    assert [line.student_id for line in report.lines] == ["bob"]
    assert canvas.grade("101") is None
    assert canvas.grade("102") == "7"


def test_token_never_reaches_output_logs_or_state(
    course: Path, canvas: FakeCanvas, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(
        main, ["publish", str(course), "-a", "hw1", "--to", "canvas"], env={"CANVAS_TOKEN": TOKEN}
    )
    assert result.exit_code == 1, result.output  # eve is unknown to Canvas
    assert "eve" in result.output
    assert "unknown" in result.output
    assert TOKEN not in result.output
    assert TOKEN not in caplog.text
    for path in (course / ".grader").iterdir():
        assert TOKEN.encode() not in path.read_bytes()
    assert canvas.authorizations == {f"Bearer {TOKEN}"}


def test_refused_token_exits_3_with_one_line(course: Path, canvas: FakeCanvas) -> None:
    result = CliRunner().invoke(
        main,
        ["publish", str(course), "-a", "hw1", "--to", "canvas"],
        env={"CANVAS_TOKEN": "wrong-token-1234"},
    )
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        "error: Canvas refused the access token (HTTP 401)"
    ]
    assert "wrong-token-1234" not in result.output
    assert canvas.count("POST", "") == 0


def test_missing_token_or_canvas_table_is_a_configuration_error(
    tmp_path: Path, course: Path
) -> None:
    result = CliRunner().invoke(
        main, ["publish", str(course), "-a", "hw1", "--to", "canvas"], env={"CANVAS_TOKEN": ""}
    )
    assert result.exit_code == 2
    assert "CANVAS_TOKEN" in result.stderr
    toml = course / "course.toml"
    toml.write_text(toml.read_text().replace("[lms.canvas]", "[lms.nothing]"))
    result = CliRunner().invoke(
        main, ["publish", str(course), "-a", "hw1", "--to", "canvas"], env={"CANVAS_TOKEN": TOKEN}
    )
    assert result.exit_code == 2


def test_ledger_records_value_and_comment_hash(course: Path, canvas: FakeCanvas) -> None:
    run(course)
    with sqlite3.connect(course / ".grader" / "state.sqlite3") as db:
        rows = db.execute(
            "SELECT student_id, recipient, value, length(comment_sha256), state, sent_at, target"
            " FROM publications ORDER BY student_id"
        ).fetchall()
    assert all(r[5] for r in rows)  # when
    assert [r[:5] for r in rows] == [
        ("ada", "101", "10", 64, "sent"),
        ("bob", "102", "7", 64, "sent"),
        ("cyd", "103", "4", 64, "sent"),
        ("fay", "106", "6", 64, "sent"),
    ]
    assert rows[0][6] == f"canvas {canvas.url}/courses/7/assignments/5"


def ledger_rows(course: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(course / ".grader" / "state.sqlite3") as db:
        return db.execute("SELECT * FROM publications ORDER BY id").fetchall()


def test_dry_run_after_an_unanswered_request_shows_what_a_real_run_would_do(
    course: Path, canvas: FakeCanvas
) -> None:
    canvas.drop_posts(1)  # four rows left open: the request went out, no answer came
    with pytest.raises(LmsUnreachableError):
        run(course)
    left = ledger_rows(course)
    later = lambda: datetime.now(UTC) + GRACE  # noqa: E731 - a clock past the grace

    waiting = run(course, dry_run=True)
    past_grace = run_publish(course, "canvas", {"CANVAS_TOKEN": TOKEN}, clock=later, dry_run=True)

    assert waiting.settled == 0
    assert results(waiting)["ada"] == "pending"  # a real run now would wait for the job
    assert "may still be queued in Canvas" in next(
        line.detail for line in waiting.lines if line.student_id == "ada"
    )
    assert past_grace.settled == 4  # looked for in Canvas, not found: a real run resends
    assert {results(past_grace)[s] for s in SENT} == {"would send"}
    assert ledger_rows(course) == left  # nothing recorded
    assert canvas.count("POST", "") == 1 and canvas.count("PUT", "") == 0  # nothing sent
    assert (
        results(run_publish(course, "canvas", {"CANVAS_TOKEN": TOKEN}, clock=later))["ada"]
        == "sent"
    )


@pytest.mark.parametrize("job", ["requested", "1"])
def test_dry_run_settles_a_send_canvas_took_without_recording_anything(
    course: Path, canvas: FakeCanvas, job: str
) -> None:
    run(course)
    with sqlite3.connect(course / ".grader" / "state.sqlite3") as db:
        # killed after Canvas took the request (job 1 completed), before the ledger heard
        db.execute("UPDATE publications SET state = 'sending', sent_at = NULL, job = ?", (job,))
    left = ledger_rows(course)

    result = CliRunner().invoke(
        main,
        ["publish", str(course), "-a", "hw1", "--to", "canvas", "--dry-run"],
        env={"CANVAS_TOKEN": TOKEN},
    )

    assert "would settle 4 send(s) an interrupted publish had left open" in result.output
    dry = run(course, dry_run=True)
    assert dry.settled == 4
    assert {results(dry)[s] for s in SENT} == {"unchanged"}  # not "would send"
    assert ledger_rows(course) == left
    assert canvas.count("POST", "update_grades$") == 1
    assert run(course).settled == 4  # the real run settles them the same way
    assert all(len(canvas.comments(CANVAS_ID[s])) == 1 for s in SENT)


def test_an_override_is_the_grade_canvas_gets_and_a_new_one_says_what_changed(
    course: Path, canvas: FakeCanvas
) -> None:
    set_override(course, "hw1", "bob", kind="score", value=9, reason="regrade: mul was right")

    first = run(course)

    bob = next(line for line in first.lines if line.student_id == "bob")
    assert (bob.new, bob.result) == ("9", "sent")
    assert canvas.grade("102") == "9"
    (comment,) = canvas.comments("102")
    assert "set to 9" in comment
    assert "mul was right" not in comment  # the reason is the instructor's
    set_override(course, "hw1", "bob", kind="adjust", value=-1, reason="late appeal")

    second = run(course)

    assert results(second)["bob"] == "sent"
    assert canvas.grade("102") == "6"
    assert canvas.comments("102")[1].startswith("Your grade for Homework 1 changed from 9 to 6")
    assert results(second)["ada"] == "unchanged"


def test_feedback_only_delivers_the_preview_of_a_student_not_graded_yet(
    course: Path, canvas: FakeCanvas
) -> None:
    previews = course / "out" / "hw1" / "preview"
    previews.mkdir(parents=True)
    (previews / "dee.md").write_text("# PREVIEW: Homework 1\n\nA preview, not your grade.\n")

    report = run(course, feedback_only=True)

    assert results(report)["dee"] == "sent"
    (comment,) = canvas.comments(CANVAS_ID["dee"])
    assert comment.startswith("# PREVIEW: Homework 1")
    assert canvas.grade(CANVAS_ID["dee"]) is None  # a preview is never a grade
    assert results(run(course, feedback_only=True))["dee"] == "unchanged"
    assert results(run(course))["dee"] == "not graded"  # and no grade goes out for it


def test_four_hundred_students_go_out_fifty_to_a_bulk_request(tmp_path: Path) -> None:
    users = [
        {"id": str(1000 + n), "name": f"S{n}", "sis_user_id": f"SIS-{n}", "login_id": ""}
        for n in range(400)
    ]
    with serve_canvas(FakeCanvas(users, page_size=100)) as canvas:
        course = make_course(tmp_path, canvas.url)
        lines = ["student_id,name,email,canvas_id,sis_user_id,sis_login_id,repo"]
        lines += [f"s{n},Student {n},s{n}@uni.edu,,SIS-{n},," for n in range(400)]
        (course / "roster.csv").write_text("\n".join(lines) + "\n")
        store_grades(course, {f"s{n}": n % 11 for n in range(400)})

        report = run(course)

        assert {line.result for line in report.lines} == {"sent"}
        assert canvas.count("POST", "update_grades$") == 8
        assert canvas.count("GET", "/users$") == 4  # 100 a page, the Link header followed
        assert all(len(job.grade_data) == 50 for job in canvas.jobs.values())
        assert canvas.grade("1399") == str(399 % 11)
        assert sum(len(canvas.comments(u["id"])) for u in users) == 400
        assert {line.result for line in run(course).lines} == {"unchanged"}
        assert canvas.count("POST", "update_grades$") == 8


def test_an_unreachable_canvas_is_exit_3_after_its_retries_and_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    course = make_course(tmp_path, f"http://127.0.0.1:{free_port()}")  # nobody listens
    store_grades(course, SCORES)
    waits = Waits()

    with pytest.raises(LmsUnreachableError) as raised:
        run(course, waits)

    assert raised.value.exit_code == 3
    assert len(waits.seconds) == RETRY_POLICY.max_attempts - 1  # a read: retried, then given up
    assert TOKEN not in str(raised.value)
    assert ledger_rows(course) == []
