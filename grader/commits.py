"""Which commit is graded at a cutoff: a pure policy over a branch's history.

``pick_commit_at`` takes plain records and returns the choice with a sentence that an
instructor and a student can both read. How commits are ordered and what happens to dates
that go backwards is in its docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from grader.config import CommitClock

SUBJECT_LENGTH = 60  # longest commit subject quoted in a reason


@dataclass(frozen=True)
class Commit:
    """One commit of a branch's first-parent history, or a folder snapshot."""

    sha: str
    committed_at: datetime  # committer date, aware UTC (forgeable: see ``first_seen``)
    subject: str = ""
    snapshot: bool = False  # a plain folder's content, not a git commit


@dataclass(frozen=True)
class CommitChoice:
    """The commit graded for one student, the time that decided it, and why, in words."""

    commit: Commit
    at: datetime  # the time compared with the cutoff (and the deadline, for lateness)
    clock: CommitClock
    reason: str
    ignored: int = 0  # later commits left out because they came after the cutoff


# choosing ---------------------------------------------------------------------------------------


def pick_commit_at(
    commits: Sequence[Commit],
    cutoff: datetime,
    *,
    clock: CommitClock = "commit_date",
    first_seen: Mapping[str, datetime] | None = None,
    zone: tzinfo | None = None,
) -> CommitChoice | None:
    """The last commit at or before ``cutoff``, or None when there is none.

    ``commits`` is a branch's first-parent history, newest first (as ``history`` returns
    it): the states the branch itself went through, not commits merged in from elsewhere.
    A commit's time is its committer date, or with ``clock="first_seen"`` when the grader
    first fetched it (dates can be forged; fetch times cannot). Times that go backwards
    along the history are raised to the latest time before them: a commit contains all
    of its ancestors' work, so it cannot count as older than any of them. A commit never
    recorded in ``first_seen`` counts as never seen. The times are then in order and the
    choice is the last commit whose time is at or before the cutoff. The reason shows
    moments in ``zone`` (the course's time zone; None: UTC).
    """
    chain = list(reversed(commits))  # oldest first
    seen = first_seen or {}
    own = [_own_time(c, clock, seen) for c in chain]
    effective: list[datetime | None] = []
    latest: datetime | None = datetime.min.replace(tzinfo=UTC)
    for time in own:
        latest = None if time is None or latest is None else max(latest, time)
        effective.append(latest)
    cutoff = _utc(cutoff)
    eligible = [i for i, t in enumerate(effective) if t is not None and t <= cutoff]
    if not eligible:
        return None
    index = eligible[-1]
    at = effective[index]
    assert at is not None  # eligible times are never None
    later = chain[index + 1 :]
    reason = _reason(
        chain[index], own[index], at, cutoff, clock, later, own[index + 1 :], zone=zone
    )
    return CommitChoice(chain[index], at, clock, reason, ignored=len(later))


def _own_time(commit: Commit, clock: CommitClock, seen: Mapping[str, datetime]) -> datetime | None:
    if clock == "commit_date":
        return _utc(commit.committed_at)
    found = seen.get(commit.sha)
    return None if found is None else _utc(found)


def _utc(time: datetime) -> datetime:
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


def _reason(
    commit: Commit,
    own: datetime | None,
    at: datetime,
    cutoff: datetime,
    clock: CommitClock,
    later: Sequence[Commit],
    later_times: Sequence[datetime | None],
    *,
    zone: tzinfo | None,
) -> str:
    def _when(time: datetime) -> str:
        return when_text(time, zone)

    verb = "committed" if clock == "commit_date" else "first seen by the grader"
    if commit.snapshot:
        what = f"a snapshot of the folder (content {commit.sha[:12]})"
        verb = "last modified" if clock == "commit_date" else verb
    else:
        what = f"commit {_describe(commit)}"
    last = "at" if commit.snapshot else "the last commit at"
    text = f"Graded {what}, {verb} {_when(at)}: {last} or before the cutoff {_when(cutoff)}."
    if own is not None and own < at:
        text += (
            f" Its own date, {_when(own)}, is earlier than a commit before it, "
            f"so it counts from {_when(at)}."
        )
    if not later:
        return text + " No later commit was ignored."
    first, first_time = later[0], later_times[0]
    when = f"{verb} {_when(first_time)}, after the cutoff" if first_time else "never seen"
    if len(later) == 1:
        return text + f" 1 later commit was ignored: {_describe(first)}, {when}."
    return text + (
        f" {len(later)} later commits were ignored; the first, {_describe(first)}, was {when}."
    )


def _describe(commit: Commit) -> str:
    subject = "".join(ch if ch.isprintable() else " " for ch in commit.subject).strip()
    if len(subject) > SUBJECT_LENGTH:
        subject = subject[: SUBJECT_LENGTH - 3] + "..."
    return f'{commit.sha[:7]} "{subject}"' if subject else commit.sha[:7]


def when_text(time: datetime, zone: tzinfo | None = None) -> str:
    """'2026-09-18 23:59 EDT' in ``zone``, else '2026-09-19 03:59 UTC'."""
    if zone is None:
        return f"{time.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return time.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def utc_from_timestamp(stamp: int) -> datetime:
    """A commit's epoch seconds as UTC; absurd (forged) values clamp to the ends of time."""
    try:
        return datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return (datetime.max if stamp > 0 else datetime.min).replace(tzinfo=UTC)
