"""The history each walked ref of a mirror had when it was last fetched, kept in the mirror.

A commit's first-parent history never changes, so a ref whose tip the remote still
advertises (``git ls-remote``: one command, and no fetch, connectivity check or log)
has the history stored here the last time it was walked. ``GitSources`` asks the
remote first when a mirror has this file, and fetches as before when anything differs
or cannot be read. The file holds shas, commit times and subjects; never an address.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from grader.commits import Commit, utc_from_timestamp

HISTORY_FILE = "grader-histories.json"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def stored_history(mirror: Path, ref: str) -> tuple[str, list[Commit]] | None:
    """The tip ``ref`` had at its last walk and its history then; None when not stored."""
    try:
        entry = json.loads((mirror / HISTORY_FILE).read_text(encoding="utf-8")).get(ref)
        tip, records = entry["tip"], entry["commits"]
        commits = [
            Commit(sha, utc_from_timestamp(int(at)), subject) for sha, at, subject in records
        ]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # none yet, or not ours to trust: the mirror is fetched as before
    if not commits or not isinstance(tip, str) or commits[0].sha != tip or not _SHA.fullmatch(tip):
        return None
    return tip, commits


def store_history(mirror: Path, ref: str, commits: list[Commit]) -> None:
    """Remember ``ref``'s history as just walked (newest first: the first is its tip)."""
    path = mirror / HISTORY_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(stored, dict):
            stored = {}
    except (OSError, ValueError):
        stored = {}
    records = [[c.sha, int(c.committed_at.timestamp()), c.subject] for c in commits]
    stored[ref] = {"tip": commits[0].sha, "commits": records}
    temporary = path.with_name(f"{HISTORY_FILE}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)  # a reader sees the old file or the new one, never half


def advertised_tips(listing: bytes) -> dict[str, str]:
    """``git ls-remote`` output -> ref name -> the sha the remote advertises for it."""
    tips = {}
    for line in listing.decode("utf-8", "replace").splitlines():
        sha, _, name = line.partition("\t")
        if _SHA.fullmatch(sha) and name:
            tips[name] = sha
    return tips
