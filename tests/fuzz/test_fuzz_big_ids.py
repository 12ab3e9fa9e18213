"""Submission ids beyond SQLite's INTEGER range are unknown ids, not server errors.

Found by the schemathesis fuzz: the engine answers 500 (``OverflowError: Python int
too large to convert to SQLite INTEGER``) to any id above 2**63 - 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.course_kit import write_project
from tests.support.served import ServedEngine, served_engine

TOO_BIG = 2**63  # one past SQLite's largest INTEGER


@pytest.fixture(scope="module")
def big_id_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEngine]:
    root = tmp_path_factory.mktemp("big-ids")
    write_project(root / "projects")
    with served_engine(root / "projects", root, slots=1) as served:
        yield served


@pytest.mark.parametrize("path", [f"submissions/{TOO_BIG}", f"submissions/{TOO_BIG}/tests_report"])
def test_a_submission_id_too_big_for_sqlite_is_not_found(
    path: str, big_id_engine: ServedEngine
) -> None:
    answer = httpx.get(
        f"{big_id_engine.url}/{path}", params={"access_token": big_id_engine.token}, timeout=10
    )
    assert answer.status_code == 404, answer.text
    assert answer.json()["error_code"] == 1001


def test_an_id_list_with_an_id_too_big_for_sqlite_is_answered(
    big_id_engine: ServedEngine,
) -> None:
    answer = httpx.get(
        f"{big_id_engine.url}/submissions",
        params={"ids": f"1,{TOO_BIG}", "access_token": big_id_engine.token},
        timeout=10,
    )
    assert answer.status_code < 500, answer.text
