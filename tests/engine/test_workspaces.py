"""Workspaces: documented states, slots, paging, expiry by an injected clock, the page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.engine import schema
from grader.engine.store import WorkspaceRecord
from grader.engine.workspaces import (
    REMOVED,
    RUNNING,
    STARTING,
    advance,
    decode_page_token,
    encode_page_token,
)
from grader.errors import InvalidRequestError
from tests.engine.appkit import (
    BASE,
    GateRunner,
    ManualClock,
    engine_client,
    make_config,
    make_project,
    q,
    submit,
    wait_final,
    wait_for,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "api" / "examples"
T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def record(state: int, last_usage: datetime | None = None) -> WorkspaceRecord:
    return WorkspaceRecord("w", "p", "{}", state, T0, 15, last_usage=last_usage)


def test_a_starting_workspace_runs_at_the_next_look() -> None:
    assert advance(record(STARTING), T0).state == RUNNING


def test_a_workspace_expires_lifetime_minutes_after_its_last_use() -> None:
    used = T0 + timedelta(minutes=5)
    assert advance(record(RUNNING, used), T0 + timedelta(minutes=19)).state == RUNNING
    gone = advance(record(RUNNING, used), T0 + timedelta(minutes=20))
    assert gone.state == REMOVED and gone.terminated_at == T0 + timedelta(minutes=20)
    assert advance(record(STARTING), T0 + timedelta(hours=1)).state == REMOVED


def test_page_tokens_are_the_documented_base64_offsets() -> None:
    assert encode_page_token(10) == "MTA="
    assert decode_page_token("MTA=") == 10
    assert decode_page_token(None) == 0
    for bad in ("MTA", "LTE=", "@@", "bm9wZQ=="):
        with pytest.raises(InvalidRequestError):
            decode_page_token(bad)


def test_a_created_workspace_has_the_documented_shape_and_then_runs(tmp_path: Path) -> None:
    clock = ManualClock()

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner(), clock=clock) as client:
            answer = await client.post("workspaces", params=q(), data={"project_id": "p"})
            assert answer.status_code == 201
            created = answer.json()
            assert created["message"] == "Workspace has been created"
            documented = json.loads((EXAMPLES / "reference_workspace_create.json").read_text())
            assert set(created) == set(documented)
            assert set(created["workspace"]) == set(documented["workspace"])
            schema.WorkspaceCreated.model_validate(created)
            workspace = created["workspace"]
            assert workspace["state"] == {"code": 1, "name": "starting"}
            assert workspace["created_at"] == "2026-09-01 12:00:00 +0000"
            assert workspace["terminated_at"] is None and workspace["last_usage"] is None
            assert workspace["lifetime"] == 15
            assert (
                workspace["workspace_url"] == f"http://127.0.0.1:8080/workspace/{workspace['id']}"
            )
            assert json.loads(workspace["project"]["config"])["version"] == 2.1
            again = (await client.get(f"workspaces/{workspace['id']}", params=q())).json()
            assert again["state"] == {"code": 2, "name": "running"}
            missing = await client.get("workspaces/0123", params=q())
            assert missing.status_code == 404 and missing.json()["error_code"] == 1001

    run(go)


def test_workspaces_hold_slots_until_they_expire(tmp_path: Path) -> None:
    clock = ManualClock()
    runner = GateRunner()

    async def go() -> None:
        config = make_config(tmp_path, slots=2)
        async with engine_client(config, runner=runner, clock=clock) as client:
            for _ in range(2):
                assert (
                    await client.post("workspaces", params=q(), data={"project_id": "p"})
                ).status_code == 201
            full = await client.post("workspaces", params=q(), data={"project_id": "p"})
            assert full.status_code == 409 and full.json()["error_code"] == 200611
            assert (await client.get("stats", params=q())).json()["workspace_slots"]["free"] == 0
            await submit(client)  # waits: the workspaces hold every slot
            await asyncio.sleep(0.05)
            assert runner.started == []
            clock.advance(minutes=14, seconds=59)
            assert (await client.get("stats", params=q())).json()["workspace_slots"]["free"] == 0
            clock.advance(seconds=1)
            await wait_for(lambda: len(runner.started) == 1)
            stats = (await client.get("stats", params=q())).json()["workspace_slots"]
            assert stats == {"all": 2, "free": 1}  # the submission took one freed slot
            listed = (await client.get("workspaces", params=q())).json()["items"]
            assert {w["state"]["code"] for w in listed} == {4}
            assert {w["terminated_at"] for w in listed} == {"2026-09-01 12:15:00 +0000"}
            runner.release()
            await wait_final(client, 1)

    run(go)


def test_the_list_filters_by_project_and_state_and_pages(tmp_path: Path) -> None:
    clock = ManualClock()
    make_project(tmp_path / "projects", "other", {"scenarios": {"a": {"default": True}}})

    async def go() -> None:
        config = make_config(tmp_path, slots=8)
        async with engine_client(config, runner=GateRunner(), clock=clock) as client:
            ids = []
            for project in ("p", "other", "p", "p"):
                answer = await client.post("workspaces", params=q(), data={"project_id": project})
                ids.append(answer.json()["workspace"]["id"])
                clock.advance(minutes=1)
            page = (await client.get("workspaces", params=q(project_id="p", limit=2))).json()
            schema.WorkspaceList.model_validate(page)
            assert [w["id"] for w in page["items"]] == [ids[3], ids[2]]
            assert page["paging"] == {"previous_page_token": None, "next_page_token": "Mg=="}
            rest = await client.get(
                "workspaces", params=q(project_id="p", limit=2, page_token="Mg==")
            )
            assert [w["id"] for w in rest.json()["items"]] == [ids[0]]
            assert rest.json()["paging"] == {"previous_page_token": "MA==", "next_page_token": None}
            clock.advance(minutes=12)  # 12:16: the first two pass their 15 minutes
            removed = (await client.get("workspaces", params=q(**{"states[]": "4"}))).json()
            assert sorted(w["id"] for w in removed["items"]) == sorted(ids[:2])
            both = await client.get(
                "workspaces", params=[*q().items(), ("states[]", "2"), ("states[]", "4")]
            )
            assert len(both.json()["items"]) == 4
            everything = (await client.get("workspaces", params=q())).json()
            assert len(everything["items"]) == 4

    run(go)


def test_creation_errors_follow_the_reference(tmp_path: Path) -> None:
    make_project(tmp_path / "projects", "broken", "{ nope")

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            unknown = await client.post("workspaces", params=q(), data={"project_id": "zz"})
            assert unknown.status_code == 400 and unknown.json()["error_code"] == 1003
            assert "zz" in unknown.json()["message"]
            missing = await client.post("workspaces", params=q(), data={})
            assert missing.status_code == 400 and missing.json()["error_code"] == 10
            override = await client.post(
                "workspaces", params=q(), data={"project_id": "p", "project_config": "[1"}
            )
            assert override.status_code == 400 and override.json()["error_code"] == 10
            broken = await client.post("workspaces", params=q(), data={"project_id": "broken"})
            assert broken.status_code == 201
            assert broken.json()["workspace"]["state"] == {"code": 5, "name": "error"}
            stats = (await client.get("stats", params=q())).json()["workspace_slots"]
            assert stats == {"all": 2, "free": 2}

    run(go)


def test_the_workspace_page_shows_files_escaped_and_the_last_result(tmp_path: Path) -> None:
    clock = ManualClock()
    runner = GateRunner()
    project = make_project(tmp_path / "projects", "p", {"scenarios": {"a": {"default": True}}})
    (project / "tests").mkdir()
    (project / "tests" / "test_x.py").write_text("assert '<script>alert(1)</script>'\n")
    (project / "blob.bin").write_bytes(b"\xff\x00" * 10)

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner, clock=clock) as client:
            await submit(client)
            runner.release()
            await wait_final(client, 1)
            created = await client.post("workspaces", params=q(), data={"project_id": "p"})
            url = created.json()["workspace"]["workspace_url"]
            denied = await client.get(url)
            assert denied.status_code == 401
            clock.advance(minutes=10)
            page = await client.get(url, params=q())
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            html = page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
            assert "tests/test_x.py" in html and "blob.bin" in html
            assert "Submission 1" in html and "ok" in html
            workspace = (
                await client.get(
                    url.replace("http://127.0.0.1:8080/workspace/", "workspaces/"), params=q()
                )
            ).json()
            assert workspace["last_usage"] == "2026-09-01 12:10:00 +0000"
            clock.advance(minutes=14)  # 24 minutes after creation, 14 after the last use
            state = (await client.get(f"{BASE}/workspaces/{workspace['id']}", params=q())).json()
            assert state["state"]["code"] == 2

    run(go)


def test_workspaces_left_running_are_stopped_by_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    config = make_config(tmp_path)

    async def first() -> None:
        async with engine_client(config, runner=GateRunner(), clock=clock) as client:
            await client.post("workspaces", params=q(), data={"project_id": "p"})

    async def second() -> None:
        clock.advance(minutes=3)
        async with engine_client(config, runner=GateRunner(), clock=clock) as client:
            items = (await client.get("workspaces", params=q())).json()["items"]
            assert items[0]["state"] == {"code": 3, "name": "stopped"}
            assert items[0]["terminated_at"] == "2026-09-01 12:03:00 +0000"
            stats = (await client.get("stats", params=q())).json()["workspace_slots"]
            assert stats == {"all": 2, "free": 2}

    run(first)
    run(second)
