"""The engine's SQLite store and submission folders."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.engine.store import (
    Finished,
    StageRecord,
    Store,
    WorkspaceRecord,
)
from grader.errors import StateError

WHEN = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def new_submission(store: Store, project: str = "p", source: bytes = b"gz") -> int:
    staging = store.new_staging()
    (staging / "streams" / "source").write_bytes(source)
    return store.create_submission(
        project_id=project,
        requested_scenario=None,
        scenario="grade",
        config="{}",
        created_at=WHEN,
        staging=staging,
        streams={"source": len(source)},
    )


def test_a_submission_survives_reopening_with_its_result(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sid = new_submission(store)
    stages = (StageRecord("run", skipped=False, time=1.5, exit_code=0),)
    store.finish_submission(
        sid,
        Finished(15, stages, score=80.0, time=1.5, memory=99),
        {"source": 2, "debug_log": 10},
        WHEN,
    )
    store.close()
    again = Store(tmp_path)
    record = again.get_submission(sid)
    assert record is not None
    assert (record.status, record.score, record.memory, record.executing) == (15, 80.0, 99, False)
    assert record.stages == stages
    assert record.streams == {"source": 2, "debug_log": 10}
    assert record.created_at == WHEN
    assert (again.streams_dir(sid) / "source").read_bytes() == b"gz"
    again.close()


def test_staging_becomes_the_submission_folder(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first, second = new_submission(store), new_submission(store)
    assert (first, second) == (1, 2)
    assert store.submission_dir(2).is_dir()
    assert list((tmp_path / "incoming").iterdir()) == []
    assert store.submission_ids((0,)) == [1, 2]
    store.close()


def test_leftovers_are_everything_no_submission_will_need(tmp_path: Path) -> None:
    store = Store(tmp_path)
    waiting, finished = new_submission(store), new_submission(store)
    store.finish_submission(finished, Finished(15), {"source": 2}, WHEN)
    for sid in (waiting, finished):
        (store.work_dir(sid) / "home").mkdir(parents=True)
        store.upload_dir(sid).mkdir(exist_ok=True)
    half = store.new_staging()
    orphan = tmp_path / "submissions" / "99"
    orphan.mkdir()
    assert sorted(store.leftovers()) == sorted(
        [
            half,
            orphan,
            store.work_dir(waiting),
            store.work_dir(finished),
            store.upload_dir(finished),
        ]
    )
    store.close()


def test_a_folder_left_by_an_uncommitted_insert_goes_to_the_trash(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (store.submission_dir(1) / "work").mkdir(parents=True)
    sid = new_submission(store)
    assert sid == 1 and not (store.work_dir(sid)).exists()
    assert [p.name.split(".")[0] for p in store.trash_dir.iterdir()] == ["orphan-1"]
    store.close()


def test_batch_lookup_keeps_the_order_asked_and_skips_unknown_ids(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ids = [new_submission(store) for _ in range(3)]
    found = store.get_submissions([ids[2], 77, ids[0]])
    assert [r.id for r in found] == [ids[2], ids[0]]
    store.close()


def test_workspaces_page_newest_first_with_filters(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for index in range(5):
        store.add_workspace(
            WorkspaceRecord(
                f"w{index}",
                "a" if index % 2 else "b",
                "{}",
                2 if index < 3 else 4,
                WHEN + timedelta(minutes=index),
                15,
            )
        )
    items, total = store.workspaces(limit=2, offset=1)
    assert [w.id for w in items] == ["w3", "w2"] and total == 5
    items, total = store.workspaces(project_id="b", states=(2,))
    assert [w.id for w in items] == ["w2", "w0"] and total == 2
    store.close()


def test_a_database_from_a_newer_engine_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / "engine.sqlite3") as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StateError, match="newer"):
        Store(tmp_path)


def test_a_corrupt_database_is_a_state_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "engine.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match=r"engine\.sqlite3"):
        Store(tmp_path)
