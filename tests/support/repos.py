"""Real git repositories for tests: commits with chosen dates, and two solutions."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Student",
    "GIT_AUTHOR_EMAIL": "student@example.edu",
    "GIT_COMMITTER_NAME": "Student",
    "GIT_COMMITTER_EMAIL": "student@example.edu",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=full_env, check=True
    )
    return done.stdout.strip()


def commit(repo: Path, files: Mapping[str, str], message: str, when: datetime) -> str:
    """Write files and commit them with author and committer date ``when``; returns the sha."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    stamp = when.isoformat()
    git(
        repo,
        "commit",
        "-q",
        "-m",
        message,
        env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
    )
    return git(repo, "rev-parse", "HEAD")


ON_TIME = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)
"""A commit time before the deadline every test course uses (2026-10-01 23:59 UTC)."""

GOOD = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n"
HALF = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a + b\n"
