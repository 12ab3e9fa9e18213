"""pick_commit_at: the commit graded at a cutoff, with plain values (no git)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from grader.commits import Commit, pick_commit_at

CUTOFF = datetime(2026, 9, 22, 4, 14, tzinfo=UTC)


def at(days: float) -> datetime:
    """A time ``days`` after the cutoff (negative: before)."""
    return CUTOFF + timedelta(days=days)


def fake_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]  # shaped like a git sha


def history(*times: float, subjects: tuple[str, ...] = ()) -> list[Commit]:
    """Commits oldest to newest at those day offsets; returned newest first, as git gives."""
    names = subjects or tuple(f"change {n}" for n in range(len(times)))
    # distinct subjects make distinct shas (the property tests rely on it)
    commits = [Commit(fake_sha(names[n]), at(t), names[n]) for n, t in enumerate(times)]
    return commits[::-1]


def test_last_commit_before_the_cutoff_is_chosen() -> None:
    choice = pick_commit_at(history(-5, -2, -1), CUTOFF)
    assert choice is not None
    assert choice.commit.subject == "change 2"
    assert (choice.at, choice.clock, choice.ignored) == (at(-1), "commit_date", 0)
    assert "No later commit was ignored" in choice.reason


def test_commit_exactly_at_the_cutoff_counts() -> None:
    choice = pick_commit_at(history(-1, 0), CUTOFF)
    assert choice is not None
    assert choice.commit.subject == "change 1"


def test_commit_after_the_cutoff_is_ignored_and_the_reason_says_so() -> None:
    commits = history(-10, -4, 1.25, subjects=("Starter", "Homework 1 solution", "Fix tie order"))
    choice = pick_commit_at(commits, CUTOFF)
    assert choice is not None
    assert choice.commit.subject == "Homework 1 solution"
    assert choice.ignored == 1
    assert choice.reason == (
        f'Graded commit {choice.commit.sha[:7]} "Homework 1 solution", committed '
        "2026-09-18 04:14 UTC: the last commit at or before the cutoff 2026-09-22 04:14 UTC. "
        f'1 later commit was ignored: {commits[0].sha[:7]} "Fix tie order", committed '
        "2026-09-23 10:14 UTC, after the cutoff."
    )


def test_several_ignored_commits_are_counted_and_the_first_is_named() -> None:
    choice = pick_commit_at(history(-3, 1, 2, 3), CUTOFF)
    assert choice is not None
    assert choice.ignored == 3
    first = fake_sha("change 1")[:7]
    assert f'3 later commits were ignored; the first, {first} "change 1", was committed' in (
        choice.reason
    )


def test_no_commit_before_the_cutoff_gives_none() -> None:
    assert pick_commit_at(history(1, 2), CUTOFF) is None
    assert pick_commit_at([], CUTOFF) is None


def test_backdated_commit_on_top_of_late_work_is_not_graded() -> None:
    # change 1 is late; change 2 claims to be older but contains change 1's work.
    choice = pick_commit_at(history(-3, 1, -2), CUTOFF)
    assert choice is not None
    assert choice.commit.subject == "change 0"
    assert choice.ignored == 2


def test_date_earlier_than_its_parent_counts_from_the_parent() -> None:
    choice = pick_commit_at(history(-3, -1, -2), CUTOFF)
    assert choice is not None
    assert choice.commit.subject == "change 2"
    assert choice.at == at(-1)
    assert "Its own date, 2026-09-20 04:14 UTC, is earlier than a commit before it" in (
        choice.reason
    )


def test_first_seen_clock_ignores_forged_commit_dates() -> None:
    commits = history(-3, -2)  # both claim to be on time
    newest = commits[0]
    seen = {commits[1].sha: at(-3), newest.sha: at(2)}  # but the newest arrived late
    choice = pick_commit_at(commits, CUTOFF, clock="first_seen", first_seen=seen)
    assert choice is not None
    assert (choice.commit, choice.at, choice.clock) == (commits[1], at(-3), "first_seen")
    assert "first seen by the grader 2026-09-19 04:14 UTC" in choice.reason
    assert "first seen by the grader 2026-09-24 04:14 UTC, after the cutoff" in choice.reason


def test_first_seen_clock_never_grades_a_commit_it_never_saw() -> None:
    commits = history(-3, -2)
    choice = pick_commit_at(commits, CUTOFF, clock="first_seen", first_seen={})
    assert choice is None
    seen_old = {commits[1].sha: at(-3)}
    choice = pick_commit_at(commits, CUTOFF, clock="first_seen", first_seen=seen_old)
    assert choice is not None
    assert choice.commit == commits[1]
    assert "never seen" in choice.reason


def test_folder_snapshot_reason_says_it_is_a_folder() -> None:
    snapshot = Commit("ab" * 32, at(-1), "snapshot of ada", snapshot=True)
    choice = pick_commit_at([snapshot], CUTOFF)
    assert choice is not None
    assert choice.reason.startswith(
        "Graded a snapshot of the folder (content abababababab), last modified "
        "2026-09-21 04:14 UTC: at or before the cutoff"
    )


def test_subject_with_control_characters_is_shown_on_one_line() -> None:
    [commit] = history(-1, subjects=("evil\x1b[2J\nsubject " + "x" * 80,))
    choice = pick_commit_at([commit], CUTOFF)
    assert choice is not None
    assert "\x1b" not in choice.reason
    assert "\n" not in choice.reason
    assert '"evil [2J subject xxx' in choice.reason
    assert 'xxx..."' in choice.reason


def test_naive_times_are_read_as_utc() -> None:
    commits = [Commit("a" * 40, datetime(2026, 9, 20, 12, 0), "naive")]
    choice = pick_commit_at(commits, CUTOFF.replace(tzinfo=None))
    assert choice is not None
    assert choice.at == datetime(2026, 9, 20, 12, 0, tzinfo=UTC)


OFFSETS = st.lists(st.integers(min_value=-100, max_value=100), max_size=12)


@settings(max_examples=300)
@given(offsets=OFFSETS, cutoff_hours=st.integers(min_value=-100, max_value=100))
def test_property_choice_is_a_prefix_of_history_ending_at_the_cutoff(
    offsets: list[int], cutoff_hours: int
) -> None:
    commits = history(*(h / 24 for h in offsets))
    cutoff = CUTOFF + timedelta(hours=cutoff_hours)
    choice = pick_commit_at(commits, cutoff)
    oldest_first = commits[::-1]
    if choice is None:
        assert not oldest_first or oldest_first[0].committed_at > cutoff
        return
    index = oldest_first.index(choice.commit)
    assert choice.at <= cutoff
    assert choice.at == max(c.committed_at for c in oldest_first[: index + 1])
    assert choice.ignored == len(oldest_first) - index - 1
    assert all(c.committed_at <= cutoff for c in oldest_first[: index + 1])
    if index + 1 < len(oldest_first):
        assert oldest_first[index + 1].committed_at > cutoff


@settings(max_examples=200)
@given(offsets=OFFSETS, early=st.integers(-100, 100), extra=st.integers(0, 100))
def test_property_a_later_cutoff_never_grades_an_older_commit(
    offsets: list[int], early: int, extra: int
) -> None:
    commits = history(*(h / 24 for h in offsets))
    first = pick_commit_at(commits, CUTOFF + timedelta(hours=early))
    second = pick_commit_at(commits, CUTOFF + timedelta(hours=early + extra))
    if first is None:
        return
    assert second is not None
    oldest_first = commits[::-1]
    assert oldest_first.index(second.commit) >= oldest_first.index(first.commit)
