"""The engine's trash: folders set aside at once, removed in the background, retried."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_kit import needs_root

from grader.engine.trash import MAX_RETRY_SECONDS, Trash, retry_delay
from tests.support.treekit import deep_tree, reaches_past_path_max, remove_trees_under


@pytest.fixture(autouse=True)
def _no_tree_outlives_the_test(tmp_path: Path) -> Iterator[None]:
    yield
    remove_trees_under(tmp_path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until_empty(trash: Trash, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while trash.pending:
        assert time.monotonic() < deadline, f"still in the trash: {trash.pending}"
        time.sleep(0.02)


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Paths given chattr +i by the test, made mutable again afterwards."""
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def make_immutable(path: Path, made: list[Path]) -> None:
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {done.stderr!r}")
    made.append(path)


def test_retry_delays_double_up_to_a_cap() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[:3] == [5.0, 10.0, 20.0]
    assert delays == sorted(delays) and delays[-1] == MAX_RETRY_SECONDS


def test_a_discarded_deep_tree_leaves_its_place_at_once_and_is_removed_later(
    tmp_path: Path,
) -> None:
    work = tmp_path / "submissions" / "7" / "work"
    deep_tree(work)
    assert reaches_past_path_max(work)
    trash = Trash(tmp_path / "trash")
    trash.discard(work)  # the thread is not running yet: only a rename happened
    assert not work.exists()
    assert [p.name.split(".")[0] for p in trash.pending] == ["7-work"]
    trash.start()
    try:
        wait_until_empty(trash)
    finally:
        trash.stop()
    assert list((tmp_path / "trash").iterdir()) == []


def test_discarding_nothing_is_fine(tmp_path: Path) -> None:
    trash = Trash(tmp_path / "trash")
    assert trash.discard(tmp_path / "absent") is True
    assert trash.pending == []


@needs_root
def test_a_removal_that_fails_is_logged_and_retried_later(
    tmp_path: Path, immutable: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    trash = Trash(tmp_path / "trash", clock=clock)
    work = tmp_path / "work"
    deep_tree(work, depth=100)
    stuck = work / "stuck"
    stuck.write_text("x")
    make_immutable(stuck, immutable)
    trash.discard(work)
    with caplog.at_level(logging.WARNING, logger="grader.engine"):
        assert trash.empty() == retry_delay(1)
    assert "cannot remove" in caplog.text and "attempt 1" in caplog.text
    caplog.clear()
    clock.now += retry_delay(1) / 2
    assert trash.empty() == retry_delay(1) / 2  # not due yet: not tried, not logged
    assert caplog.text == "" and len(trash.pending) == 1
    subprocess.run(["chattr", "-i", str(trash.pending[0] / "stuck")], check=True)
    clock.now += retry_delay(1)
    assert trash.empty() is None
    assert trash.pending == []


@needs_root
def test_what_cannot_be_moved_into_the_trash_stays_in_place_with_a_warning(
    tmp_path: Path, immutable: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    trash = Trash(tmp_path / "trash")
    holder = tmp_path / "holder"
    deep_tree(holder / "work", depth=100)
    make_immutable(holder, immutable)  # nothing may leave it: the rename fails
    with caplog.at_level(logging.WARNING, logger="grader.engine"):
        assert trash.discard(holder / "work") is False
    assert "cannot move" in caplog.text and "next start tries again" in caplog.text
    assert (holder / "work").is_dir() and trash.pending == []
    subprocess.run(["chattr", "-i", str(holder)], check=True)
    assert trash.discard(holder / "work") is True
    assert not (holder / "work").exists() and len(trash.pending) == 1
