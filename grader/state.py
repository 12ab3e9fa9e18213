"""The grader's SQLite state: runs, sources, submissions, results and grades.

Everything a later command needs lives here, so `grader report` can rebuild outputs and
a killed run can resume. Writes are small, committed at once (WAL), and ordered so a
kill at any moment loses nothing that finished: the submission row exists *before* the
create call and gets the engine's id the moment the engine returns it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from grader.errors import StateError

SCHEMA_VERSION = 5
STATE_FILE = "state.sqlite3"

SubmissionState = Literal["creating", "created", "final", "infra", "lost"]

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        engine TEXT NOT NULL,
        assignments TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'running',
        summary TEXT
    );
    CREATE TABLE commits_seen (
        repo TEXT NOT NULL,
        sha TEXT NOT NULL,
        committed_at TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        PRIMARY KEY (repo, sha)
    );
    CREATE TABLE sources (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        assignment TEXT NOT NULL,
        student_id TEXT NOT NULL,
        repo TEXT NOT NULL,
        sha TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        clock TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (run_id, assignment, student_id)
    );
    CREATE TABLE archives (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        file_count INTEGER NOT NULL,
        first_built TEXT NOT NULL
    );
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        assignment TEXT NOT NULL,
        student_id TEXT NOT NULL,
        engine TEXT NOT NULL,
        submission_key TEXT NOT NULL,
        archive_sha256 TEXT NOT NULL,
        project TEXT NOT NULL,
        scenario TEXT,
        engine_id INTEGER,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        final_at TEXT,
        status_code INTEGER,
        status_name TEXT,
        detail TEXT
    );
    CREATE INDEX submissions_by_key ON submissions (engine, submission_key);
    CREATE INDEX submissions_by_student ON submissions (assignment, student_id);
    CREATE TABLE results (
        submission_id INTEGER PRIMARY KEY REFERENCES submissions(id),
        result_json TEXT NOT NULL,
        tests_report TEXT NOT NULL,
        build_output TEXT NOT NULL,
        debug_log TEXT NOT NULL
    );
    CREATE TABLE grades (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        assignment TEXT NOT NULL,
        student_id TEXT NOT NULL,
        status TEXT NOT NULL,
        score REAL,
        outcome_json TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX grades_by_student ON grades (assignment, student_id, id);
    """,
    # the publish ledger (grader/publish/ledger.py): what went where, for idempotence
    2: """
    CREATE TABLE publications (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        assignment TEXT NOT NULL,
        student_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        value TEXT,
        comment_sha256 TEXT,
        ref TEXT NOT NULL,
        state TEXT NOT NULL,
        job TEXT,
        started_at TEXT NOT NULL,
        sent_at TEXT,
        detail TEXT
    );
    CREATE INDEX publications_by_student ON publications (target, assignment, student_id, id);
    """,
    # grader override and grader regrade (grader/overriding.py)
    3: """
    CREATE TABLE overrides (
        id INTEGER PRIMARY KEY,
        assignment TEXT NOT NULL,
        student_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        value REAL NOT NULL,
        reason TEXT NOT NULL,
        show_reason INTEGER NOT NULL,
        graded_score REAL,
        created_at TEXT NOT NULL,
        removed_at TEXT,
        removed_reason TEXT
    );
    CREATE INDEX overrides_by_student ON overrides (assignment, student_id, id);
    CREATE TABLE regrades (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        assignment TEXT NOT NULL,
        student_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        before_status TEXT,
        before_score REAL,
        after_status TEXT,
        after_score REAL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX regrades_by_student ON regrades (assignment, student_id, id);
    """,
    # grader similarity (grader/comparing.py): the pairs the dashboard shows, per assignment
    4: """
    CREATE TABLE similar_pairs (
        assignment TEXT NOT NULL,
        student_a TEXT NOT NULL,
        student_b TEXT NOT NULL,
        similarity REAL NOT NULL,
        identical INTEGER NOT NULL,
        commit_a TEXT,
        commit_b TEXT,
        compared_at TEXT NOT NULL,
        PRIMARY KEY (assignment, student_a, student_b)
    );
    """,
    # which archive a commit became (grader/pipeline.py): an unchanged commit is not read
    # and packaged again to learn its hash when a stored result can be reused as it is
    5: """
    CREATE TABLE packed (
        repo TEXT NOT NULL,
        sha TEXT NOT NULL,
        packing TEXT NOT NULL,
        archive_sha256 TEXT NOT NULL REFERENCES archives(sha256),
        PRIMARY KEY (repo, sha, packing)
    );
    """,
}


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _iso_exact(moment: datetime) -> str:
    """To the microsecond: grades and overrides are put in one history by these times,
    and an override and the regrade after it often fall in the same second."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class SubmissionRow:
    """One attempt to run one student's archive on an engine."""

    id: int
    run_id: int
    assignment: str
    student_id: str
    engine: str
    submission_key: str
    archive_sha256: str
    project: str
    scenario: str | None
    engine_id: int | None
    state: SubmissionState
    attempt: int
    status_code: int | None
    status_name: str | None
    detail: str | None


@dataclass(frozen=True)
class PackedFrom:
    """What an archive was built from: a source (redacted address), a commit, a packing
    (``archive.packing_key``: the include/exclude globs and size cap, the format)."""

    repo: str
    sha: str
    packing: str


@dataclass(frozen=True)
class StoredResult:
    """What the engine said about a final submission, as fetched."""

    result_json: str
    tests_report: str
    build_output: str
    debug_log: str


@dataclass(frozen=True)
class StoredGrade:
    run_id: int
    assignment: str
    student_id: str
    status: str
    score: float | None
    outcome_json: str
    created_at: datetime


@dataclass(frozen=True)
class StoredOverride:
    """One override as set (and, once removed or replaced, when and why it ended)."""

    id: int
    assignment: str
    student_id: str
    kind: str
    value: float
    reason: str
    show_reason: bool
    graded_score: float | None
    created_at: datetime
    removed_at: datetime | None
    removed_reason: str | None


@dataclass(frozen=True)
class StoredRegrade:
    """One `grader regrade`: the run that regraded, why, and the grade before and after."""

    run_id: int
    assignment: str
    student_id: str
    reason: str
    before_status: str | None
    before_score: float | None
    after_status: str | None
    after_score: float | None
    created_at: datetime


@dataclass(frozen=True)
class StoredSimilarPair:
    """A pair `grader similarity` found alike, and the commits it compared."""

    student_a: str
    student_b: str
    similarity: float
    identical: bool
    commit_a: str | None
    commit_b: str | None
    compared_at: datetime


class State:
    """The SQLite store of one course (``COURSE/.grader/state.sqlite3``)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _now):
        self.path = path
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: cannot use the grader state: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        version: int = self.db.execute("PRAGMA user_version").fetchone()[0]
        return version

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: written by a newer grader (schema {current}, "
                f"this one knows {SCHEMA_VERSION}); upgrade grader"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version:d}")

    # runs -------------------------------------------------------------------------------
    def start_run(self, *, engine: str, assignments: Sequence[str]) -> int:
        cursor = self.db.execute(
            "INSERT INTO runs (started_at, engine, assignments) VALUES (?, ?, ?)",
            (_iso(self.clock()), engine, ",".join(assignments)),
        )
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, *, status: str, summary: str) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
            (_iso(self.clock()), status, summary, run_id),
        )

    # commits ----------------------------------------------------------------------------
    def record_commits(
        self, repo: str, commits: Sequence[tuple[str, datetime]]
    ) -> dict[str, datetime]:
        """Remember when each commit was first seen; returns first-seen times for all."""
        now = _iso(self.clock())
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO commits_seen (repo, sha, committed_at, first_seen)"
                " VALUES (?, ?, ?, ?)",
                [(repo, sha, _iso(at), now) for sha, at in commits],
            )
        rows = self.db.execute(
            "SELECT sha, first_seen FROM commits_seen WHERE repo = ?", (repo,)
        ).fetchall()
        return {sha: datetime.fromisoformat(seen) for sha, seen in rows}

    def record_source(
        self,
        run_id: int,
        assignment: str,
        student_id: str,
        *,
        repo: str,
        sha: str,
        decided_at: datetime,
        clock: str,
        reason: str,
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, assignment, student_id, repo, sha, _iso(decided_at), clock, reason),
        )

    def record_archive(
        self, sha256: str, *, size: int, file_count: int, packed: PackedFrom | None = None
    ) -> None:
        """An archive built, and (``packed``) the commit and packing it was built from."""
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO archives VALUES (?, ?, ?, ?)",
                (sha256, size, file_count, _iso(self.clock())),
            )
            if packed is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO packed VALUES (?, ?, ?, ?)",
                    (packed.repo, packed.sha, packed.packing, sha256),
                )

    def packed_archive(self, packed: PackedFrom) -> str | None:
        """The hash of the archive this commit became with this packing, if it was built."""
        row = self.db.execute(
            "SELECT archive_sha256 FROM packed WHERE repo = ? AND sha = ? AND packing = ?",
            (packed.repo, packed.sha, packed.packing),
        ).fetchone()
        return str(row[0]) if row else None

    # submissions ------------------------------------------------------------------------
    def reusable_submission(self, engine: str, submission_key: str) -> SubmissionRow | None:
        """The newest submission of this exact archive+project+scenario that still counts."""
        row = self.db.execute(
            f"SELECT {_SUBMISSION_COLUMNS} FROM submissions"
            " WHERE engine = ? AND submission_key = ? AND state IN ('created', 'final')"
            " ORDER BY id DESC LIMIT 1",
            (engine, submission_key),
        ).fetchone()
        return _submission(row) if row else None

    def begin_submission(
        self,
        run_id: int,
        assignment: str,
        student_id: str,
        *,
        engine: str,
        submission_key: str,
        archive_sha256: str,
        project: str,
        scenario: str | None,
        attempt: int,
    ) -> int:
        """Record the intent to create a submission, before the create call."""
        cursor = self.db.execute(
            "INSERT INTO submissions (run_id, assignment, student_id, engine, submission_key,"
            " archive_sha256, project, scenario, state, attempt, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'creating', ?, ?)",
            (
                run_id,
                assignment,
                student_id,
                engine,
                submission_key,
                archive_sha256,
                project,
                scenario,
                attempt,
                _iso(self.clock()),
            ),
        )
        return int(cursor.lastrowid or 0)

    def submission_created(self, row_id: int, engine_id: int) -> None:
        self.db.execute(
            "UPDATE submissions SET engine_id = ?, state = 'created' WHERE id = ?",
            (engine_id, row_id),
        )

    def submission_failed(self, row_id: int, state: SubmissionState, detail: str) -> None:
        """An infrastructure failure ('infra') or an id the engine no longer knows ('lost')."""
        self.db.execute(
            "UPDATE submissions SET state = ?, detail = ?, final_at = ? WHERE id = ?",
            (state, detail, _iso(self.clock()), row_id),
        )

    def submission_final(
        self, row_id: int, *, status_code: int, status_name: str, result: StoredResult
    ) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                (
                    row_id,
                    result.result_json,
                    result.tests_report,
                    result.build_output,
                    result.debug_log,
                ),
            )
            self.db.execute(
                "UPDATE submissions SET state = 'final', status_code = ?, status_name = ?,"
                " final_at = ? WHERE id = ?",
                (status_code, status_name, _iso(self.clock()), row_id),
            )

    def result_for(self, row_id: int) -> StoredResult | None:
        row = self.db.execute(
            "SELECT result_json, tests_report, build_output, debug_log FROM results"
            " WHERE submission_id = ?",
            (row_id,),
        ).fetchone()
        return StoredResult(*row) if row else None

    def submissions_of(self, assignment: str, student_id: str) -> list[SubmissionRow]:
        rows = self.db.execute(
            f"SELECT {_SUBMISSION_COLUMNS} FROM submissions"
            " WHERE assignment = ? AND student_id = ? ORDER BY id",
            (assignment, student_id),
        ).fetchall()
        return [_submission(row) for row in rows]

    # grades -----------------------------------------------------------------------------
    def record_grade(
        self,
        run_id: int,
        assignment: str,
        student_id: str,
        *,
        status: str,
        score: float | None,
        outcome_json: str,
    ) -> None:
        self.db.execute(
            "INSERT INTO grades (run_id, assignment, student_id, status, score, outcome_json,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, assignment, student_id, status, score, outcome_json, _iso_exact(self.clock())),
        )

    def latest_grades(self, assignment: str) -> list[StoredGrade]:
        """The newest grade of every student of an assignment, by student id."""
        rows = self.db.execute(
            "SELECT run_id, assignment, student_id, status, score, outcome_json, created_at"
            " FROM grades WHERE id IN (SELECT MAX(id) FROM grades WHERE assignment = ?"
            " GROUP BY student_id) ORDER BY student_id",
            (assignment,),
        ).fetchall()
        return [_grade(row) for row in rows]

    def grade_history(self, assignment: str) -> list[StoredGrade]:
        """Every grade ever recorded for an assignment, oldest first."""
        rows = self.db.execute(
            "SELECT run_id, assignment, student_id, status, score, outcome_json, created_at"
            " FROM grades WHERE assignment = ? ORDER BY id",
            (assignment,),
        ).fetchall()
        return [_grade(row) for row in rows]

    # overrides and regrades ------------------------------------------------------------
    def set_override(
        self,
        assignment: str,
        student_id: str,
        *,
        kind: str,
        value: float,
        reason: str,
        show_reason: bool,
        graded_score: float | None,
    ) -> StoredOverride:
        """Store an override; one already active for the student is ended ("replaced")."""
        now = _iso_exact(self.clock())
        with self.transaction():
            self.db.execute(
                "UPDATE overrides SET removed_at = ?, removed_reason = ? WHERE assignment = ?"
                " AND student_id = ? AND removed_at IS NULL",
                (now, "replaced by a new override", assignment, student_id),
            )
            cursor = self.db.execute(
                "INSERT INTO overrides (assignment, student_id, kind, value, reason,"
                " show_reason, graded_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (assignment, student_id, kind, value, reason, int(show_reason), graded_score, now),
            )
        return self._override(int(cursor.lastrowid or 0))

    def remove_override(
        self, assignment: str, student_id: str, reason: str
    ) -> StoredOverride | None:
        """End the student's active override; None when there is none."""
        active = self.active_overrides(assignment).get(student_id)
        if active is None:
            return None
        self.db.execute(
            "UPDATE overrides SET removed_at = ?, removed_reason = ? WHERE id = ?",
            (_iso_exact(self.clock()), reason, active.id),
        )
        return self._override(active.id)

    def active_overrides(self, assignment: str) -> dict[str, StoredOverride]:
        """Student id -> the override in force for ``assignment``."""
        rows = self.db.execute(
            f"SELECT {_OVERRIDE_COLUMNS} FROM overrides"
            " WHERE assignment = ? AND removed_at IS NULL ORDER BY id",
            (assignment,),
        ).fetchall()
        return {o.student_id: o for o in map(_stored_override, rows)}

    def override_history(self, assignment: str) -> list[StoredOverride]:
        """Every override ever set for ``assignment``, oldest first."""
        rows = self.db.execute(
            f"SELECT {_OVERRIDE_COLUMNS} FROM overrides WHERE assignment = ? ORDER BY id",
            (assignment,),
        ).fetchall()
        return [_stored_override(row) for row in rows]

    def _override(self, row_id: int) -> StoredOverride:
        row = self.db.execute(
            f"SELECT {_OVERRIDE_COLUMNS} FROM overrides WHERE id = ?", (row_id,)
        ).fetchone()
        return _stored_override(row)

    def record_regrade(self, regrade: StoredRegrade) -> None:
        self.db.execute(
            "INSERT INTO regrades (run_id, assignment, student_id, reason, before_status,"
            " before_score, after_status, after_score, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                regrade.run_id,
                regrade.assignment,
                regrade.student_id,
                regrade.reason,
                regrade.before_status,
                regrade.before_score,
                regrade.after_status,
                regrade.after_score,
                _iso(regrade.created_at),
            ),
        )

    def regrades(self, assignment: str) -> list[StoredRegrade]:
        """Every regrade of ``assignment``, oldest first."""
        rows = self.db.execute(
            "SELECT run_id, assignment, student_id, reason, before_status, before_score,"
            " after_status, after_score, created_at FROM regrades WHERE assignment = ?"
            " ORDER BY id",
            (assignment,),
        ).fetchall()
        return [_stored_regrade(row) for row in rows]

    # similarity -------------------------------------------------------------------------
    def replace_similar_pairs(self, assignment: str, pairs: Sequence[StoredSimilarPair]) -> None:
        """The pairs of ``assignment``'s latest comparison, in place of the earlier ones."""
        with self.transaction():
            self.db.execute("DELETE FROM similar_pairs WHERE assignment = ?", (assignment,))
            self.db.executemany(
                "INSERT INTO similar_pairs (assignment, student_a, student_b, similarity,"
                " identical, commit_a, commit_b, compared_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        assignment,
                        p.student_a,
                        p.student_b,
                        p.similarity,
                        int(p.identical),
                        p.commit_a,
                        p.commit_b,
                        _iso(p.compared_at),
                    )
                    for p in pairs
                ],
            )

    def similar_pairs(self, assignment: str) -> list[StoredSimilarPair]:
        """The pairs ``grader similarity`` stored for ``assignment``, most similar first."""
        rows = self.db.execute(
            "SELECT student_a, student_b, similarity, identical, commit_a, commit_b,"
            " compared_at FROM similar_pairs WHERE assignment = ?"
            " ORDER BY identical DESC, similarity DESC, student_a, student_b",
            (assignment,),
        ).fetchall()
        return [
            StoredSimilarPair(a, b, score, bool(same), ca, cb, datetime.fromisoformat(at))
            for a, b, score, same, ca, cb, at in rows
        ]


_OVERRIDE_COLUMNS = (
    "id, assignment, student_id, kind, value, reason, show_reason, graded_score, created_at,"
    " removed_at, removed_reason"
)


def _stored_override(row: Any) -> StoredOverride:  # sqlite3 rows are untyped tuples
    row_id, assignment, student_id, kind, value, reason, show, graded, created, removed, why = row
    return StoredOverride(
        id=row_id,
        assignment=assignment,
        student_id=student_id,
        kind=kind,
        value=value,
        reason=reason,
        show_reason=bool(show),
        graded_score=graded,
        created_at=datetime.fromisoformat(created),
        removed_at=datetime.fromisoformat(removed) if removed else None,
        removed_reason=why,
    )


def _stored_regrade(row: Any) -> StoredRegrade:
    run_id, assignment, student_id, reason, before_status, before, after_status, after, at = row
    return StoredRegrade(
        run_id=run_id,
        assignment=assignment,
        student_id=student_id,
        reason=reason,
        before_status=before_status,
        before_score=before,
        after_status=after_status,
        after_score=after,
        created_at=datetime.fromisoformat(at),
    )


_SUBMISSION_COLUMNS = (
    "id, run_id, assignment, student_id, engine, submission_key, archive_sha256, project,"
    " scenario, engine_id, state, attempt, status_code, status_name, detail"
)


def _submission(row: Any) -> SubmissionRow:  # sqlite3 rows are untyped tuples
    return SubmissionRow(*row)


def _grade(row: Any) -> StoredGrade:
    run_id, assignment, student_id, status, score, outcome_json, created = row
    return StoredGrade(
        run_id,
        assignment,
        student_id,
        status,
        score,
        outcome_json,
        datetime.fromisoformat(created),
    )


def open_state(state_dir: Path) -> State:
    """Open (creating if needed) the course's state database."""
    return State(state_dir / STATE_FILE)
