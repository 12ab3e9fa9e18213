"""`grader publish --to git`: FEEDBACK.md on the feedback branch of real repositories.

Each student's repository is a real bare repository in tmp_path (one is a git bundle, one
refuses pushes with a hook); nothing but the feedback branch may ever change.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grader.publish.results import PublishReport
from grader.publishing import PublishOptions, publish
from tests.support.publish_kit import (
    HIDDEN_MESSAGE,
    HIDDEN_NAME,
    make_course,
    results,
    store_grades,
)
from tests.support.repos import commit, git

SCORES: dict[str, float | None] = {
    "ada": 10,
    "bob": 7,
    "cyd": 4,
    "dee": None,
    "eve": 8,
    "fay": 6,
}
PUSHABLE = ("ada", "bob", "cyd", "fay")
WHEN = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)


def bare_repo(root: Path, student: str) -> Path:
    work = root / "work" / student
    commit(work, {"solution.py": f"# {student}\n"}, "solve", WHEN)
    bare = root / "remotes" / f"{student}.git"
    git(root, "clone", "-q", "--bare", str(work), str(bare))
    return bare


@pytest.fixture
def course(tmp_path: Path) -> Path:
    repos = {s: str(bare_repo(tmp_path, s)) for s in (*PUSHABLE, "dee")}
    bundle = tmp_path / "remotes" / "eve.bundle"
    work = tmp_path / "work" / "eve"
    commit(work, {"solution.py": "# eve\n"}, "solve", WHEN)
    git(work, "bundle", "create", str(bundle), "--all")
    repos["eve"] = str(bundle)
    course = make_course(tmp_path, "https://canvas.invalid", repos=repos)
    store_grades(course, SCORES)
    return course


def remote(course: Path, student: str) -> Path:
    return course.parent / "remotes" / f"{student}.git"


def branches(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in out.splitlines())


def feedback_file(repo: Path) -> str:
    return git(repo, "show", "feedback:FEEDBACK.md")


def run(course: Path, **options: object) -> PublishReport:
    return publish(PublishOptions(course, "hw1", "git", **options))  # type: ignore[arg-type]


def test_feedback_is_committed_on_its_own_branch_and_pushed(course: Path) -> None:
    mains = {s: branches(remote(course, s))["main"] for s in (*PUSHABLE, "dee")}

    report = run(course)

    assert results(report) == {
        "ada": "sent",
        "bob": "sent",
        "cyd": "sent",
        "dee": "not graded",
        "eve": "failed",
        "fay": "sent",
    }
    assert report.exit_code == 1
    eve = next(line for line in report.lines if line.student_id == "eve")
    assert "bundle" in eve.detail
    for student in PUSHABLE:
        repo = remote(course, student)
        assert branches(repo)["main"] == mains[student]  # untouched
        assert set(branches(repo)) == {"main", "feedback"}
        text = feedback_file(repo)
        assert f"Feedback for Student {student} ({student})" in text
        assert HIDDEN_NAME not in text
        assert HIDDEN_MESSAGE not in text
        assert git(repo, "ls-tree", "--name-only", "feedback") == "FEEDBACK.md"
    assert "Score: 7 / 10" in feedback_file(remote(course, "bob"))
    assert set(branches(remote(course, "dee"))) == {"main"}  # not graded: nothing


def test_nothing_is_pushed_when_nothing_changed(course: Path) -> None:
    run(course)
    tips = {s: branches(remote(course, s))["feedback"] for s in PUSHABLE}

    again = run(course)

    assert {results(again)[s] for s in PUSHABLE} == {"unchanged"}
    assert {s: branches(remote(course, s))["feedback"] for s in PUSHABLE} == tips


def test_a_changed_grade_adds_one_commit_and_keeps_the_students_files(
    course: Path, tmp_path: Path
) -> None:
    run(course)
    # the student keeps a file of their own on the feedback branch
    clone = tmp_path / "bob-clone"
    git(tmp_path, "clone", "-q", "-b", "feedback", str(remote(course, "bob")), str(clone))
    mine = commit(clone, {"NOTES.md": "thanks\n"}, "my notes", WHEN)
    git(clone, "push", "-q", "origin", "feedback")
    store_grades(course, {"bob": 9})

    report = run(course)

    bob = next(line for line in report.lines if line.student_id == "bob")
    assert (bob.result, bob.old, bob.new, bob.detail) == ("sent", "7", "9", "grade 7 -> 9")
    repo = remote(course, "bob")
    assert git(repo, "rev-parse", "feedback^") == mine
    assert git(repo, "log", "-1", "--format=%s", "feedback") == "hw1: grade 7 -> 9"
    assert "Score: 9 / 10" in feedback_file(repo)
    assert git(repo, "show", "feedback:NOTES.md") == "thanks"
    assert results(report)["ada"] == "unchanged"


def test_dry_run_pushes_nothing(course: Path) -> None:
    report = run(course, dry_run=True)
    assert {results(report)[s] for s in PUSHABLE} == {"would send"}
    assert all("feedback" not in branches(remote(course, s)) for s in PUSHABLE)


def test_a_remote_that_refuses_the_push_is_reported_and_the_others_go_out(course: Path) -> None:
    hook = remote(course, "cyd") / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed' >&2\nexit 1\n")
    hook.chmod(0o755)

    report = run(course)

    cyd = next(line for line in report.lines if line.student_id == "cyd")
    assert cyd.result == "failed"
    assert "git push" in cyd.detail
    assert "feedback" not in branches(remote(course, "cyd"))
    assert {results(report)[s] for s in ("ada", "bob", "fay")} == {"sent"}
    hook.unlink()
    assert results(run(course))["cyd"] == "sent"  # the next publish tries again


def test_a_plain_folder_or_missing_path_is_reported(course: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "solution.py").write_text("x = 1\n")
    roster = course / "roster.csv"
    text = roster.read_text()
    text = text.replace(str(remote(course, "ada")), str(plain))
    text = text.replace(str(remote(course, "bob")), str(tmp_path / "gone.git"))
    roster.write_text(text)

    lines = {line.student_id: line for line in run(course).lines}

    assert lines["ada"].result == "failed"
    assert "plain folder" in lines["ada"].detail
    assert lines["bob"].result == "failed"
    assert "does not exist" in lines["bob"].detail
    assert lines["fay"].result == "sent"


def test_the_feedback_branch_name_comes_from_lms_git(course: Path) -> None:
    toml = course / "course.toml"
    toml.write_text('[lms.git]\nbranch = "grader/feedback"\n\n' + toml.read_text())
    run(course, students=("ada",))
    assert set(branches(remote(course, "ada"))) == {"main", "grader/feedback"}
    assert (
        subprocess.run(
            ["git", "-C", str(remote(course, "ada")), "rev-parse", "--verify", "-q", "feedback"],
            capture_output=True,
            check=False,
        ).returncode
        != 0
    )


def test_a_push_left_open_by_a_killed_run_is_settled_from_the_branch(course: Path) -> None:
    from grader.config import load_course
    from grader.publish.ledger import Ledger
    from grader.state import open_state

    run(course)
    config = load_course(course)
    with open_state(config.state_dir) as state:
        ledger = Ledger(state)
        sent = {p.student_id: p for p in ledger.history("git feedback", "hw1")}
        # killed after the push, before the ledger heard of it; and killed before the push
        ledger.begin(
            "git feedback",
            "hw1",
            "ada",
            recipient="x",
            value="10",
            comment_sha256=sent["ada"].comment_sha256,
        )
        ledger.begin(
            "git feedback", "hw1", "bob", recipient="x", value="7", comment_sha256="0" * 64
        )

        left = ledger.history("git feedback", "hw1")

    dry = run(course, dry_run=True)  # settles them as a real run would, records nothing
    with open_state(config.state_dir) as state:
        assert Ledger(state).history("git feedback", "hw1") == left
    report = run(course)

    assert dry.settled == report.settled == 2
    assert results(dry) == results(report)
    assert {results(report)[s] for s in PUSHABLE} == {"unchanged"}
    with open_state(config.state_dir) as state:
        states = [(p.student_id, p.state) for p in Ledger(state).history("git feedback", "hw1")]
    assert states[-2:] == [("ada", "sent"), ("bob", "failed")]


def test_a_send_left_open_for_a_repository_gone_since_is_not_counted_settled(
    course: Path, tmp_path: Path
) -> None:
    from grader.config import load_course
    from grader.publish.ledger import Ledger
    from grader.state import open_state

    with open_state(load_course(course).state_dir) as state:
        Ledger(state).begin(
            "git feedback", "hw1", "ada", recipient="x", value="10", comment_sha256="0" * 64
        )
    roster = course / "roster.csv"
    gone = str(tmp_path / "gone")
    roster.write_text(roster.read_text().replace(str(remote(course, "ada")), gone))

    report = run(course)

    assert results(report)["ada"] == "failed"
    assert report.settled == 0  # still open: the next publish that reaches the branch settles it
