"""``manifest/<student_id>.json``: where a grade came from, for audits and regrade requests.

One small JSON file per student that answers "what exactly was graded, where, and how":
the commit and why it was chosen, the archive's content hash, the engine's submission id
and status, attempts, the score and its late penalty. It is instructor-facing (it names
the engine status and carries the debug reason) but holds no test names, messages or
student output, and it is written from the ``StudentView`` (its reason scrubbed of hidden
material, no integrity flags), so it can be shared with a student who disputes a grade.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from grader import __version__
from grader.reports.feedback import file_stem
from grader.reports.student_view import StudentView
from grader.reports.templating import PageViews, write_view

MANIFEST_DIR = "manifest"
MANIFEST_VERSION = 1


def manifest_of(outcome: StudentView) -> dict[str, Any]:
    """The manifest record of one outcome (plain JSON values, fixed key order)."""
    grade = outcome.grade
    return {
        "manifest_version": MANIFEST_VERSION,
        "grader_version": __version__,
        "assignment": outcome.assignment.id,
        "project": outcome.assignment.project,
        "scenario": outcome.assignment.scenario,
        "student_id": outcome.student.student_id,
        "status": outcome.status,
        "outcome": outcome.outcome,
        "reason": outcome.reason,
        "commit": outcome.commit,
        "commit_reason": outcome.commit_reason,
        "committed_at": _iso(outcome.committed_at),
        "lateness_seconds": outcome.lateness.total_seconds(),
        "archive_sha256": outcome.archive_sha256,
        "submission_id": outcome.submission_id,
        "engine_status": outcome.engine_status,
        "attempts": outcome.attempts,
        "score": grade.score if grade and outcome.status == "graded" else None,
        "max_score": grade.max_score if grade else outcome.assignment.max_points,
        "raw_points": grade.raw_points if grade else None,
        "late_penalty_points": grade.penalty_points if grade else None,
        "late_reason": grade.late.reason if grade else None,
    }


def render_manifest(outcome: StudentView) -> bytes:
    """Deterministic bytes: same outcome, same file."""
    return _manifest_bytes(manifest_of(outcome))


def _manifest_bytes(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode()


def write_manifests(
    outcomes: Iterable[StudentView], directory: Path, *, pages: PageViews | None = None
) -> list[Path]:
    """Write ``directory/manifest/<student_id>.json`` for every outcome; one ``pages``
    saw written from the same record is left as it is."""
    folder = directory / MANIFEST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for outcome in outcomes:
        path = folder / f"{file_stem(outcome.student.student_id)}.json"
        record = manifest_of(outcome)
        write_view(path, record, partial(_manifest_bytes, record), pages)
        written.append(path)
    return written


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
