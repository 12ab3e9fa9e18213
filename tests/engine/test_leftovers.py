"""Nothing a submission leaves behind can break the engine: not a run, not a restart.

The leftovers are real trees of every kind (3000 levels deep, locked modes, another
uid's, names that are not UTF-8), planted where a stopped engine leaves folders or left
by a real submission in the real sandbox. Each test checks that its attack is in place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from appkit import (
    JUNIT,
    GateRunner,
    archive,
    engine_client,
    make_config,
    make_project,
    q,
    submit,
    wait_final,
    wait_for,
)
from runner_kit import needs_root, needs_sandbox

from grader.engine.settings import EngineConfig
from grader.engine.spec import Cancel, RunOutcome, RunSpec
from grader.engine.store import Finished, Store
from tests.support.treekit import (
    ATTACK,
    ATTACK_DONE,
    deep_tree,
    locked_tree,
    odd_names,
    reaches_past_path_max,
    remove_trees_under,
)

NOBODY = 65534
INTERRUPTED = "the engine stopped while this submission ran"
WHEN = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_tree_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    remove_trees_under(tmp_path)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def every_kind_of_tree(top: Path) -> Path:
    """A deep tree, locked folders owned by another uid, odd names; checked to be there."""
    deep_tree(top / "deep")
    assert reaches_past_path_max(top / "deep")
    odd_names(top / "odd")
    if os.geteuid() == 0:
        locked_tree(top / "locked", owner=NOBODY)
    else:
        locked_tree(top / "locked")
    return top


def plant(store: Store, config: EngineConfig, status: int) -> int:
    """A submission row with ``status``, as a killed engine leaves it."""
    staging = store.new_staging()
    (staging / "streams" / "source").write_bytes(b"gz")
    (staging / "upload" / "solution.py").write_text("x = 1\n")
    sid = store.create_submission(
        project_id="p",
        requested_scenario=None,
        scenario="grade",
        config=(config.projects_dir / "p" / "config.json").read_text(),
        created_at=WHEN,
        staging=staging,
        streams={"source": 2},
    )
    store.set_status(sid, status)
    return sid


class LookingRunner(GateRunner):
    """Notes what each run finds in its work folder when it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[list[str]] = []

    def __call__(self, spec: RunSpec, cancel: Cancel) -> RunOutcome:
        self.found.append(sorted(p.name for p in spec.work_dir.iterdir()))
        return super().__call__(spec, cancel)


def trash_is_empty(config: EngineConfig) -> Callable[[], bool]:
    return lambda: not any((config.data_dir / "trash").iterdir())


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_start_finishes_what_ran_and_sets_every_leftover_aside(tmp_path: Path) -> None:
    config = make_config(tmp_path, slots=2)
    store = Store(config.data_dir)
    executing = plant(store, config, 3)
    preparing = plant(store, config, 1)
    waiting = plant(store, config, 0)
    finished = plant(store, config, 0)
    store.finish_submission(finished, Finished(15), {"source": 2}, WHEN)
    for sid in (executing, preparing, waiting, finished):
        every_kind_of_tree(store.work_dir(sid) / "home")  # half-written or never removed
    every_kind_of_tree(store.upload_dir(finished) / "left")
    every_kind_of_tree(store.new_staging() / "upload")  # an upload cut off by the stop
    every_kind_of_tree(config.data_dir / "submissions" / "99")  # a folder without a row
    store.close()
    runner = LookingRunner()
    runner.release(5)

    async def go() -> None:
        async with engine_client(config, runner=runner) as client:
            for sid in (executing, preparing):
                body = await wait_final(client, sid)
                assert body["result"]["status"] == {"code": 20, "name": "internal error"}
                log = await client.get(f"submissions/{sid}/debug_log", params=q())
                assert INTERRUPTED in log.text
            assert (await wait_final(client, waiting))["result"]["status"]["code"] == 15
            assert runner.started[0].submission_id == waiting
            assert runner.found == [[]]  # a fresh work folder, not the half-written one
            assert (await wait_final(client, finished))["result"]["status"]["code"] == 15
            new = (await submit(client)).json()["id"]
            assert (await wait_final(client, new))["result"]["status"]["code"] == 15
            await wait_for(trash_is_empty(config), seconds=60)

    run(go)
    data = config.data_dir
    assert sorted(p.name for p in (data / "submissions").iterdir()) == [
        str(sid) for sid in sorted((executing, preparing, waiting, finished, 5))
    ]
    assert list((data / "incoming").iterdir()) == []
    for folder in (data / "submissions").iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["streams"]


def test_an_interrupted_submission_whose_folder_is_broken_still_ends_as_20(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    store = Store(config.data_dir)
    executing = plant(store, config, 3)
    deep_tree(store.streams_dir(executing) / "debug_log")  # where the reason would go
    store.close()
    runner = GateRunner()
    runner.release(5)

    async def go() -> None:
        async with engine_client(config, runner=runner) as client:
            body = await wait_final(client, executing)
            assert body["result"]["status"]["code"] == 20
            new = (await submit(client)).json()["id"]
            assert (await wait_final(client, new))["result"]["status"]["code"] == 15

    with caplog.at_level(logging.WARNING, logger="grader.engine"):
        run(go)
    assert f"submission {executing}: cannot write debug_log" in caplog.text


@needs_root
def test_a_leftover_that_cannot_be_removed_stops_neither_a_start_nor_a_run(
    tmp_path: Path, immutable: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    store = Store(config.data_dir)
    executing = plant(store, config, 3)
    work = every_kind_of_tree(store.work_dir(executing) / "home")
    stuck = work / "stuck"
    stuck.write_text("x")
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    immutable.append(stuck)
    store.close()
    runner = GateRunner()
    runner.release(5)

    async def go() -> None:
        async with engine_client(config, runner=runner) as client:
            body = await wait_final(client, executing)
            assert body["result"]["status"]["code"] == 20
            new = (await submit(client)).json()["id"]
            assert (await wait_final(client, new))["result"]["status"]["code"] == 15
            await wait_for(lambda: "cannot remove" in caplog.text, seconds=60)

    with caplog.at_level(logging.WARNING, logger="grader.engine"):
        run(go)
    assert "Operation not permitted" in caplog.text
    (held,) = (config.data_dir / "trash").iterdir()  # still there, tried again later
    subprocess.run(["chattr", "-i", str(next(held.rglob("stuck")))], check=True)
    immutable.clear()

    async def again() -> None:
        async with engine_client(config, runner=GateRunner()):
            await wait_for(trash_is_empty(config), seconds=60)

    run(again)


ATTACK_PROJECT = {
    "version": 2.1,
    "scenarios": {
        "grade": {
            "default": True,
            "stages": {
                # The attack everywhere the stage may write, the result's places included;
                # then an honest report: the submission still deserves its 15.
                "run": {
                    "command": 'python3 attack.py . "$HOME/junk" "$SE_PATH_SCENARIO_RESULT" '
                    '"$SE_PATH_FINAL_TESTS_REPORT" && '
                    f"printf '%s' '{JUNIT}' > \"$SE_PATH_UNIT_TESTS_REPORT\"",
                    "timeout": 60,
                },
                "test": {"command": "se_utils_cli evaluate", "timeout": 20},
            },
        }
    },
}


@pytest.mark.sandbox
@needs_sandbox
def test_a_submission_leaving_every_kind_of_tree_is_graded_and_cleaned_away(
    tmp_path: Path,
) -> None:
    make_project(tmp_path / "projects", "attack", ATTACK_PROJECT)
    config = make_config(tmp_path, slots=1)

    async def go() -> None:
        async with engine_client(config) as client:
            sid = (await submit(client, "attack", source=_archive_with_attack())).json()["id"]
            body = await wait_final(client, sid, seconds=120)
            log = (await client.get(f"submissions/{sid}/debug_log", params=q())).text
            assert body["result"]["status"]["code"] == 15, log
            out = await client.get(f"submissions/{sid}/stage_run_output", params=q())
            assert f"{ATTACK_DONE} 4" in out.text  # the attack ran in all four places
            following = (await submit(client)).json()["id"]
            body = await wait_final(client, following, seconds=60)
            assert body["result"]["status"]["code"] == 15
            await wait_for(trash_is_empty(config), seconds=60)

    run(go)
    for folder in (config.data_dir / "submissions").iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["streams"]


def _archive_with_attack() -> bytes:
    return archive({"attack.py": ATTACK.encode()})
