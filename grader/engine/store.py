"""The local engine's storage: SQLite rows plus one folder per submission.

```
data_dir/
  engine.sqlite3            submissions and workspaces
  incoming/<random>/        an upload being received; renamed to submissions/<id>/
  trash/<name>.<random>/    folders no longer needed, being removed (``trash.py``)
  submissions/<id>/
    streams/<name>          source, debug_log, stage_<stage>_<output|error>, tests_report
    upload/                 the archive's workspace/ contents (until the run ends)
    work/                   the runner's folder (until the run ends)
```
Folders a submission wrote are never removed in place: they are moved into ``trash/``.
Rows are written only from the event loop's thread; the lock makes a stray call from a
worker thread safe rather than corrupting.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.errors import StateError

SCHEMA_VERSION = 1
DB_FILE = "engine.sqlite3"
ACTIVE_STATUSES = (0, 1, 3)

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    requested_scenario TEXT,
    scenario TEXT,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    score REAL,
    time REAL NOT NULL DEFAULT 0,
    memory INTEGER NOT NULL DEFAULT 0,
    signal INTEGER,
    stages TEXT NOT NULL DEFAULT '[]',
    streams TEXT NOT NULL DEFAULT '{}',
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS submissions_by_status ON submissions (status);
CREATE INDEX IF NOT EXISTS submissions_by_project ON submissions (project_id, status);
CREATE TABLE IF NOT EXISTS workspaces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    config TEXT NOT NULL,
    state INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    terminated_at TEXT,
    last_usage TEXT,
    lifetime INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class StageRecord:
    """One stage as reported (the quickstart's fields)."""

    name: str
    skipped: bool
    time: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    status_changed_to: int | None = None


@dataclass(frozen=True)
class Finished:
    """A submission's final result, as stored."""

    status: int
    stages: tuple[StageRecord, ...] = ()
    score: float | None = None
    time: float = 0.0
    memory: int = 0
    signal: int | None = None


@dataclass(frozen=True)
class SubmissionRecord:
    """A stored submission. ``streams`` maps each existing stream to its size."""

    id: int
    project_id: str
    requested_scenario: str | None
    scenario: str | None
    config: str
    created_at: datetime
    status: int
    score: float | None = None
    time: float = 0.0
    memory: int = 0
    signal: int | None = None
    stages: tuple[StageRecord, ...] = ()
    streams: Mapping[str, int] = field(default_factory=dict)

    @property
    def executing(self) -> bool:
        """Codes below 10 are waiting, preparation and execution."""
        return self.status < 10


@dataclass(frozen=True)
class WorkspaceRecord:
    """A stored workspace; ``lifetime`` is in minutes."""

    id: str
    project_id: str
    config: str
    state: int
    created_at: datetime
    lifetime: int
    terminated_at: datetime | None = None
    last_usage: datetime | None = None


class Store:
    """SQLite and stream files under one ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        for folder in (data_dir, data_dir / "incoming", data_dir / "submissions", self.trash_dir):
            folder.mkdir(parents=True, exist_ok=True)
        path = data_dir / DB_FILE
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(f"{path}: schema {version} is newer than this engine's")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: cannot be used: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- folders ------------------------------------------------------------------

    def submission_dir(self, submission_id: int) -> Path:
        return self.data_dir / "submissions" / str(submission_id)

    def streams_dir(self, submission_id: int) -> Path:
        return self.submission_dir(submission_id) / "streams"

    def upload_dir(self, submission_id: int) -> Path:
        return self.submission_dir(submission_id) / "upload"

    def work_dir(self, submission_id: int) -> Path:
        return self.submission_dir(submission_id) / "work"

    def new_staging(self) -> Path:
        """A fresh folder for one incoming upload (with ``streams/`` and ``upload/``)."""
        staging = self.data_dir / "incoming" / secrets.token_hex(12)
        (staging / "streams").mkdir(parents=True)
        (staging / "upload").mkdir()
        return staging

    @property
    def trash_dir(self) -> Path:
        return self.data_dir / "trash"

    def leftovers(self) -> list[Path]:
        """What a stopped engine left that nothing needs (call before anything runs).

        Uploads interrupted by the stop, submission folders without a row (a crash
        between rename and commit), every ``work/`` folder, and the ``upload/`` of every
        submission that will not run again (all but the waiting ones).
        """
        found = list(_children(self.data_dir / "incoming"))
        statuses = {
            int(row[0]): int(row[1]) for row in self._query("SELECT id, status FROM submissions")
        }
        for folder in _children(self.data_dir / "submissions"):
            status = statuses.get(int(folder.name)) if folder.name.isdigit() else None
            if status is None:
                found.append(folder)
                continue
            found.append(folder / "work")
            if status != 0:  # only a waiting submission (0) still needs its upload
                found.append(folder / "upload")
        return [path for path in found if path.exists() or path.is_symlink()]

    # --- streams ------------------------------------------------------------------

    def stream_path(self, submission_id: int, name: str) -> Path:
        return self.streams_dir(submission_id) / name

    def stream_size(self, submission_id: int, name: str) -> int:
        return self.stream_path(submission_id, name).stat().st_size

    # --- submissions ----------------------------------------------------------------

    def create_submission(
        self,
        *,
        project_id: str,
        requested_scenario: str | None,
        config: str,
        created_at: datetime,
        staging: Path,
        streams: Mapping[str, int],
        scenario: str | None = None,
        finished: Finished | None = None,
    ) -> int:
        """Insert a row and move ``staging`` to the submission's folder, atomically enough.

        The folder is renamed before the commit: a crash in between leaves a folder
        without a row, which the next start finds among the ``leftovers``.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO submissions (project_id, requested_scenario, scenario, config, "
                "created_at, status, streams) VALUES (?, ?, ?, ?, ?, 0, ?)",
                (
                    project_id,
                    requested_scenario,
                    scenario,
                    config,
                    created_at.isoformat(),
                    json.dumps(dict(streams)),
                ),
            )
            submission_id = int(cursor.lastrowid or 0)
            if finished is not None:
                self._write_finished(db, submission_id, finished, streams, created_at)
            target = self.submission_dir(submission_id)
            if target.exists() or target.is_symlink():  # a leftover of an uncommitted insert
                target.rename(self.trash_dir / f"orphan-{target.name}.{secrets.token_hex(6)}")
            staging.rename(target)
        return submission_id

    def set_status(self, submission_id: int, status: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE submissions SET status = ? WHERE id = ?", (status, submission_id))

    def finish_submission(
        self, submission_id: int, finished: Finished, streams: Mapping[str, int], when: datetime
    ) -> None:
        with self._transaction() as db:
            self._write_finished(db, submission_id, finished, streams, when)

    def get_submission(self, submission_id: int) -> SubmissionRecord | None:
        if not _storable(submission_id):
            return None  # no such id can exist; SQLite would overflow on it
        rows = self._query("SELECT * FROM submissions WHERE id = ?", (submission_id,))
        return _submission(rows[0]) if rows else None

    def get_submissions(self, ids: Sequence[int]) -> list[SubmissionRecord]:
        """The submissions among ``ids`` that exist, in the order asked."""
        ids = [i for i in ids if _storable(i)]
        marks = ",".join("?" * len(ids))
        rows = self._query(f"SELECT * FROM submissions WHERE id IN ({marks})", tuple(ids))
        found = {row["id"]: _submission(row) for row in rows}
        return [found[i] for i in ids if i in found]

    def submission_ids(self, statuses: Sequence[int]) -> list[int]:
        marks = ",".join("?" * len(statuses))
        rows = self._query(
            f"SELECT id FROM submissions WHERE status IN ({marks}) ORDER BY id", tuple(statuses)
        )
        return [int(row[0]) for row in rows]

    def latest_finished(self, project_id: str) -> SubmissionRecord | None:
        rows = self._query(
            "SELECT * FROM submissions WHERE project_id = ? AND status >= 10 "
            "ORDER BY id DESC LIMIT 1",
            (project_id,),
        )
        return _submission(rows[0]) if rows else None

    # --- workspaces -----------------------------------------------------------------

    def add_workspace(self, workspace: WorkspaceRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO workspaces (id, project_id, config, state, created_at, "
                "terminated_at, last_usage, lifetime) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _workspace_values(workspace),
            )

    def update_workspace(self, workspace: WorkspaceRecord) -> None:
        values = _workspace_values(workspace)
        with self._transaction() as db:
            db.execute(
                "UPDATE workspaces SET project_id = ?, config = ?, state = ?, created_at = ?, "
                "terminated_at = ?, last_usage = ?, lifetime = ? WHERE id = ?",
                (*values[1:], values[0]),
            )

    def get_workspace(self, workspace_id: str) -> WorkspaceRecord | None:
        rows = self._query("SELECT * FROM workspaces WHERE id = ?", (workspace_id,))
        return _workspace(rows[0]) if rows else None

    def workspaces(
        self,
        *,
        project_id: str | None = None,
        states: Sequence[int] = (),
        offset: int = 0,
        limit: int = -1,
    ) -> tuple[list[WorkspaceRecord], int]:
        """One page of workspaces, newest first, and how many match in all."""
        where: list[str] = ["1 = 1"]
        args: list[object] = []
        if project_id is not None:
            where.append("project_id = ?")
            args.append(project_id)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        condition = " AND ".join(where)
        total = int(
            self._query(f"SELECT COUNT(*) FROM workspaces WHERE {condition}", tuple(args))[0][0]
        )
        rows = self._query(
            f"SELECT * FROM workspaces WHERE {condition} ORDER BY seq DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [_workspace(row) for row in rows], total

    # --- plumbing -------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    @staticmethod
    def _write_finished(
        db: sqlite3.Connection,
        submission_id: int,
        finished: Finished,
        streams: Mapping[str, int],
        when: datetime,
    ) -> None:
        db.execute(
            "UPDATE submissions SET status = ?, score = ?, time = ?, memory = ?, signal = ?, "
            "stages = ?, streams = ?, finished_at = ? WHERE id = ?",
            (
                finished.status,
                finished.score,
                finished.time,
                finished.memory,
                finished.signal,
                json.dumps([stage.__dict__ for stage in finished.stages]),
                json.dumps(dict(streams)),
                when.isoformat(),
                submission_id,
            ),
        )


def _submission(row: sqlite3.Row) -> SubmissionRecord:
    return SubmissionRecord(
        id=int(row["id"]),
        project_id=row["project_id"],
        requested_scenario=row["requested_scenario"],
        scenario=row["scenario"],
        config=row["config"],
        created_at=datetime.fromisoformat(row["created_at"]),
        status=int(row["status"]),
        score=row["score"],
        time=float(row["time"]),
        memory=int(row["memory"]),
        signal=row["signal"],
        stages=tuple(StageRecord(**stage) for stage in json.loads(row["stages"])),
        streams={str(k): int(v) for k, v in json.loads(row["streams"]).items()},
    )


def _workspace(row: sqlite3.Row) -> WorkspaceRecord:
    return WorkspaceRecord(
        id=row["id"],
        project_id=row["project_id"],
        config=row["config"],
        state=int(row["state"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        lifetime=int(row["lifetime"]),
        terminated_at=_date(row["terminated_at"]),
        last_usage=_date(row["last_usage"]),
    )


def _workspace_values(w: WorkspaceRecord) -> tuple[Any, ...]:
    return (
        w.id,
        w.project_id,
        w.config,
        w.state,
        w.created_at.isoformat(),
        w.terminated_at.isoformat() if w.terminated_at else None,
        w.last_usage.isoformat() if w.last_usage else None,
        w.lifetime,
    )


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []


SQLITE_MAX_INTEGER = 2**63 - 1


def _storable(submission_id: int) -> bool:
    """Whether an id fits SQLite's INTEGER (a path id can be any size)."""
    return 0 < submission_id <= SQLITE_MAX_INTEGER
