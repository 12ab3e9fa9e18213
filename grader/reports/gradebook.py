"""The gradebook (one row per student) and the score history (one row per run and student).

Both are built once from records with pandas, written as UTF-8 CSV with ``\\n`` line
ends, and give the same bytes for the same records. A "not graded" student has an
empty score, never 0. Free-text cells that a spreadsheet would run as a formula
(starting with ``= + - @``) get a leading apostrophe: commit subjects are student text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from grader.records import StudentOutcome
from grader.reports.excerpt import printable, safe_text
from grader.scoring.overrides import override_note
from grader.state import StoredOverride, StoredRegrade

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = (
    "student_id",
    "name",
    "score",
    "max_score",
    "status",
    "commit",
    "outcome",
    "reason",
    "raw_points",
    "late_penalty",
    "late_percent",
    "late_days",
    "lateness_minutes",
    "committed_at",
    "commit_reason",
    "email",
    "section",
    "notes",
    "flags",
    "graded_score",
    "override",
    "override_reason",
    "override_at",
    "override_note",
    "late_days_spent",
    "late_days_left",
)
"""Gradebook columns in order; scripts rely on the first six (DESIGN.md), and columns are
only ever appended. ``score`` is the final score, an instructor's override included;
``graded_score`` is what the tests gave before it.

Only what the grade depends on: the engine's submission id and the number of attempts
are in ``manifest/<student_id>.json``, so a run resumed after a crash writes the very
same gradebook as one that never stopped."""

HISTORY_COLUMNS = (
    "assignment",
    "run_id",
    "graded_at",
    "student_id",
    "status",
    "score",
    "event",
    "previous_score",
    "reason",
)
"""History columns: one row per run and student ("graded", or "regrade" with the score
before and the reason), per override set or removed ("override", "override removed")."""

_FLOATS = (
    "score",
    "max_score",
    "raw_points",
    "late_penalty",
    "late_percent",
    "lateness_minutes",
    "graded_score",
)
_INTEGERS = ("late_days", "late_days_spent", "late_days_left")


class GradeRecord(Protocol):
    """One stored grade (``grader.state.StoredGrade`` is one)."""

    @property
    def run_id(self) -> int: ...
    @property
    def assignment(self) -> str: ...
    @property
    def student_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def score(self) -> float | None: ...
    @property
    def created_at(self) -> datetime: ...


def build_gradebook(outcomes: Iterable[StudentOutcome]) -> pd.DataFrame:
    """One row per outcome, in the order given, columns as ``COLUMNS``."""
    import pandas as pd  # on first use: see load_pandas

    rows = [gradebook_row(o) for o in outcomes]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return _typed(frame, _FLOATS, _INTEGERS)


def gradebook_row(outcome: StudentOutcome) -> dict[str, Any]:
    """The gradebook's cells for one outcome (None: an empty cell)."""
    grade = outcome.grade if outcome.status == "graded" else None
    known_commit = outcome.commit is not None
    notes = grade.warnings if grade else ()
    return {
        "student_id": outcome.student.student_id,
        "name": safe_text(outcome.student.name),
        "score": grade.score if grade else None,
        "max_score": outcome.assignment.max_points,
        "status": outcome.status,
        "commit": outcome.commit or "",
        "outcome": safe_text(outcome.outcome),
        "reason": safe_text(outcome.reason),
        "raw_points": grade.raw_points if grade else None,
        "late_penalty": grade.penalty_points if grade else None,
        "late_percent": grade.late.percent if grade else None,
        "late_days": grade.late_days if grade else None,
        "lateness_minutes": (
            round(outcome.lateness.total_seconds() / 60, 2) if known_commit else None
        ),
        "committed_at": _iso(outcome.committed_at),
        "commit_reason": safe_text(outcome.commit_reason or ""),
        "email": outcome.student.email,
        "section": outcome.student.section,
        "notes": safe_text("; ".join(notes)),
        "flags": safe_text(printable("; ".join(f"{f.kind}: {f.reason}" for f in outcome.flags))),
        **_override_cells(outcome),
        "late_days_spent": outcome.late_days.spent if outcome.late_days else None,
        "late_days_left": outcome.late_days.left if outcome.late_days else None,
    }


def _override_cells(outcome: StudentOutcome) -> dict[str, Any]:
    override = outcome.override
    if override is None:
        grade = outcome.grade if outcome.status == "graded" else None
        return {
            "graded_score": grade.score if grade else None,
            "override": "",
            "override_reason": "",
            "override_at": "",
            "override_note": "",
        }
    return {
        "graded_score": override.current_score,
        "override": override.describe(),
        "override_reason": safe_text(override.reason),
        "override_at": _iso(override.created_at),
        "override_note": override_note(override),
    }


def write_gradebook(frame: pd.DataFrame, path: Path) -> None:
    """Write a gradebook (or history) frame as CSV: same frame, same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8", na_rep="")


def build_history(
    grades: Iterable[GradeRecord],
    *,
    overrides: Iterable[StoredOverride] = (),
    regrades: Iterable[StoredRegrade] = (),
) -> pd.DataFrame:
    """Every run's result per student, every override set or removed, oldest first.

    A run that was a `grader regrade` of a student is that student's "regrade" row, with
    the score before and the reason."""
    import pandas as pd  # on first use: see load_pandas

    why = {(r.run_id, r.student_id): r for r in regrades}
    rows: list[tuple[datetime, int, dict[str, Any]]] = []
    for order, g in enumerate(grades):
        regrade = why.get((g.run_id, g.student_id))
        row = {
            "assignment": g.assignment,
            "run_id": g.run_id,
            "graded_at": _iso(g.created_at),
            "student_id": g.student_id,
            "status": g.status,
            "score": g.score if g.status == "graded" else None,
            "event": "regrade" if regrade else "graded",
            "previous_score": regrade.before_score if regrade else None,
            "reason": safe_text(regrade.reason) if regrade else "",
        }
        rows.append((g.created_at, order, row))
    for o in overrides:
        value = f"{o.value:g}" if o.kind == "score" else f"{o.value:+g}"
        rows.append((o.created_at, len(rows), _override_row(o, f"override ({o.kind} {value})")))
        if o.removed_at is not None:
            row = _override_row(o, "override removed", o.removed_reason or "")
            rows.append((o.removed_at, len(rows), {**row, "graded_at": _iso(o.removed_at)}))
    rows.sort(key=lambda item: (item[0], item[1]))
    frame = pd.DataFrame([row for _, _, row in rows], columns=list(HISTORY_COLUMNS))
    return _typed(frame, ("score", "previous_score"), ("run_id",))


def _override_row(o: StoredOverride, event: str, reason: str | None = None) -> dict[str, Any]:
    score = o.value if o.kind == "score" else None
    if o.kind == "adjust" and o.graded_score is not None:
        score = max(o.graded_score + o.value, 0.0)
    return {
        "assignment": o.assignment,
        "run_id": None,
        "graded_at": _iso(o.created_at),
        "student_id": o.student_id,
        "status": "override",
        "score": score if event.startswith("override (") else None,
        "event": event,
        "previous_score": o.graded_score,
        "reason": safe_text(o.reason if reason is None else reason),
    }


def write_history(frame: pd.DataFrame, path: Path) -> None:
    """Write ``history.csv``."""
    write_gradebook(frame, path)


def _typed(frame: pd.DataFrame, floats: Iterable[str], integers: Iterable[str]) -> pd.DataFrame:
    """Fixed dtypes, so an all-empty column writes the same way as a full one."""
    import pandas as pd  # on first use: see load_pandas

    for column in floats:
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    for column in integers:
        frame[column] = frame[column].astype("Int64")
    return frame


def load_pandas() -> None:
    """Import pandas now. It is imported on first use, not with this module: it is about
    half of ``grader``'s start-up, and a run needs it only for the outputs at its end
    (``grader.grading`` loads it while the engine works, in the thread that warms the
    outputs up)."""
    import pandas  # noqa: F401 (imported to be loaded, not used here)


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
