"""Fixtures of the fault suite: one served engine, student repos, a proxy per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.proxy import FaultProxy, fault_proxy
from tests.support.course_kit import write_project, write_repos
from tests.support.served import ServedEngine, served_engine


@pytest.fixture(scope="session")
def student_repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repos(tmp_path_factory.mktemp("repos"))


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEngine]:
    """A real `grader engine serve` process (real sandbox), four slots."""
    root = tmp_path_factory.mktemp("engine")
    write_project(root / "projects")
    with served_engine(root / "projects", root, slots=4) as served:
        yield served


@pytest.fixture
def proxy(engine: ServedEngine) -> Iterator[FaultProxy]:
    with fault_proxy(engine.url) as started:
        yield started
