"""Every route of the Containers API v1.1 over HTTP (in-process), with its error codes."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from grader.engine import schema
from grader.engine.spec import Cancel, RunOutcome, RunSpec
from tests.engine.appkit import (
    BASE,
    TOKEN,
    GateRunner,
    archive,
    engine_client,
    grading_config,
    make_config,
    make_project,
    q,
    submit,
    wait_final,
    wait_for,
)

FORM = "application/x-www-form-urlencoded"
EXAMPLES = Path(__file__).resolve().parents[1] / "api" / "examples"


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def shape(value: Any) -> Any:
    """Field names and JSON types, recursively (null matches anything)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return None if value is None else type(value).__name__


def same_shape(ours: Any, documented: Any, path: str = "") -> None:
    if isinstance(documented, dict):
        assert isinstance(ours, dict), path
        assert set(ours) >= set(documented), f"{path}: missing {set(documented) - set(ours)}"
        for key, item in documented.items():
            if item is not None and ours[key] is not None:
                same_shape(ours[key], item, f"{path}.{key}")
    else:
        assert shape(ours) == shape(documented), f"{path}: {ours!r} vs {documented!r}"


ROUTES = [
    ("GET", "test"),
    ("GET", "stats"),
    ("GET", "workspaces"),
    ("POST", "workspaces"),
    ("GET", "workspaces/abc"),
    ("GET", "submissions?ids=1"),
    ("POST", "submissions"),
    ("GET", "submissions/1"),
    ("GET", "submissions/1/source"),
    ("GET", "no/such/route"),
    ("GET", "http://127.0.0.1:8080/workspace/abc"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_missing_or_wrong_token(
    tmp_path: Path, method: str, path: str
) -> None:
    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            for params in ({}, {"access_token": "wrong"}, {"access_token": TOKEN + "x"}):
                url = httpx.URL(BASE + "/").join(path).copy_merge_params(params)
                answer = await client.request(method, url, data={"project_id": "p"})
                assert answer.status_code == 401
                assert answer.json() == {"message": "unauthorized access", "error_code": 1}
            wrong_bearer = {"Authorization": "Bearer nope"}
            answer = await client.request(method, path, headers=wrong_bearer)
            assert answer.status_code == 401

    run(go)


def test_the_token_is_accepted_as_query_parameter_or_bearer_header(tmp_path: Path) -> None:
    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            by_query = await client.get("test", params=q())
            by_header = await client.get("test", headers={"Authorization": f"Bearer {TOKEN}"})
            for answer in (by_query, by_header):
                assert answer.status_code == 200
                assert answer.json() == {"message": "You can use Sphere Engine Containers API."}

    run(go)


def test_a_finished_submission_has_the_quickstart_shape(tmp_path: Path) -> None:
    runner = GateRunner()

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner) as client:
            created = await submit(client, scenario="grade")
            assert created.status_code == 201
            assert created.json() == {"message": "Submission has been created", "id": 1}
            runner.release()
            body = await wait_final(client, 1)
        documented = json.loads((EXAMPLES / "quickstart_submission.json").read_text())
        same_shape(body, documented)
        assert set(body["streams"]) == set(documented["streams"])
        assert set(body["stages"]) == {"init", "build", "run", "test", "post"}
        schema.SubmissionModel.model_validate(body)
        assert body["result"] == {
            "status": {"code": 15, "name": "ok"},
            "score": 100.0,
            "time": 0.25,
            "memory": 2048,
            "signal": 0,
        }
        assert body["stages"]["run"] == {
            "time": 0.0,
            "skipped": False,
            "exit_code": 0,
            "signal": None,
            "status_changed_to": None,
        }
        assert body["stages"]["build"]["skipped"] is True
        assert body["scenario"] == "grade" and body["project"]["id"] == "p"
        assert body["streams"]["stage_build_output"] is None
        assert body["streams"]["stage_run_output"] == {
            "size": len("solution.py"),
            "uri": f"{BASE}/submissions/1/stage_run_output",
        }
        assert body["uri"] == f"{BASE}/submissions/1"
        assert (
            len(body["date"]) == len("2021-01-01 14:21:57 +0000") and body["date"][-5:] == "+0000"
        )

    run(go)


def test_a_waiting_submission_reports_status_0_and_executing(tmp_path: Path) -> None:
    runner = GateRunner()

    async def go() -> None:
        async with engine_client(make_config(tmp_path, slots=1), runner=runner) as client:
            await submit(client)
            await submit(client)
            await wait_for(lambda: len(runner.started) == 1)
            first = (await client.get("submissions/1", params=q())).json()
            second = (await client.get("submissions/2", params=q())).json()
            assert (first["result"]["status"], first["executing"]) == (
                {"code": 3, "name": "execution"},
                True,
            )
            assert (second["result"]["status"], second["executing"]) == (
                {"code": 0, "name": "waiting"},
                True,
            )
            assert second["stages"]["run"]["skipped"] is False
            runner.release(2)
            assert (await wait_final(client, 2))["result"]["status"]["code"] == 15

    run(go)


def test_streams_answer_quickstart_and_reference_names(tmp_path: Path) -> None:
    runner = GateRunner()
    source = archive({"a.py": b"print(1)\n", "b.py": b""})

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner) as client:
            await submit(client, source=source)
            runner.release()
            await wait_final(client, 1)
            quick = await client.get("submissions/1/stage_run_output", params=q())
            reference = await client.get("submissions/1/stage_execution_output", params=q())
            assert quick.status_code == reference.status_code == 200
            assert quick.text == reference.text == "a.py,b.py"
            assert quick.headers["content-type"].startswith("text/plain")
            raw = await client.get("submissions/1/source", params=q())
            assert raw.content == source and raw.headers["content-type"] == "application/gzip"
            log = await client.get("submissions/1/debug_log", params=q())
            assert "gate runner: released" in log.text
            for missing in ("tests_report", "stage_judge_output", "stage_build_error", "nope"):
                answer = await client.get(f"submissions/1/{missing}", params=q())
                assert answer.status_code == 404 and answer.json()["error_code"] == 1101
            answer = await client.get("submissions/999/source", params=q())
            assert answer.status_code == 404 and answer.json()["error_code"] == 1001

    run(go)


def test_an_unknown_submission_is_1001(tmp_path: Path) -> None:
    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            for path in ("submissions/5", "submissions/abc", "submissions/-1"):
                answer = await client.get(path, params=q())
                assert answer.status_code == 404
                assert answer.json()["error_code"] == 1001

    run(go)


def test_an_unknown_project_is_1003_naming_it(tmp_path: Path) -> None:
    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            for project in ("nope", "../p"):
                answer = await submit(client, project=project)
                assert answer.status_code == 400
                body = answer.json()
                assert body["error_code"] == 1003 and project in body["message"]
        assert list((tmp_path / "data" / "incoming").iterdir()) == []

    run(go)


def test_bad_request_data_is_400_10_and_leaves_nothing_behind(tmp_path: Path) -> None:
    runner = GateRunner()

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner) as client:
            cases = [
                ({"data": {}}, "project_id is required"),
                ({"content": b"a=1", "headers": {"content-type": "text/plain"}}, "content type"),
                (
                    {
                        "data": {"project_id": "p"},
                        "files": {"source": ("s.tar.gz", b"not an archive")},
                    },
                    "not a gzip file",
                ),
                (
                    {
                        "data": {"project_id": "p"},
                        "files": {"source": ("s.tar.gz", archive({"../x": b"1"}))},
                    },
                    "contains '..'",
                ),
                (
                    {
                        "content": b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--\r\n",
                        "headers": {"content-type": "multipart/form-data; boundary=zz"},
                    },
                    "has no name",
                ),
            ]
            for kwargs, reason in cases:
                answer = await client.post("submissions", params=q(), **kwargs)
                assert answer.status_code == 400, reason
                body = answer.json()
                assert body["error_code"] == 10 and reason in body["message"], body
            missing = await client.get("submissions", params=q(ids="1"))
            assert missing.json()["items"] == []
        assert list((tmp_path / "data" / "incoming").iterdir()) == []
        assert list((tmp_path / "data" / "submissions").iterdir()) == []
        assert runner.started == []

    run(go)


def test_an_upload_over_the_cap_is_cut_off_as_it_arrives(tmp_path: Path) -> None:
    config = make_config(tmp_path, max_upload_bytes=50_000)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        # No Content-Length: the engine must count what arrives and stop.
        nonlocal sent
        head = b'--b\r\nContent-Disposition: form-data; name="source"; filename="s"\r\n\r\n'
        yield head
        for _ in range(1000):
            sent += 10_000
            yield b"\0" * 10_000

    async def go() -> None:
        async with engine_client(config, runner=GateRunner()) as client:
            answer = await client.post(
                "submissions",
                params=q(),
                content=endless(),
                headers={"content-type": "multipart/form-data; boundary=b"},
            )
            assert answer.status_code == 400
            assert "larger than 50000 bytes" in answer.json()["message"]
            announced = await client.post(
                "submissions",
                params=q(),
                content=b"x" * 10,
                headers={"content-length": "60000", "content-type": "multipart/form-data"},
            )
            assert announced.status_code == 400
            assert "larger than 50000 bytes" in announced.json()["message"]
        assert sent < 100_000

    run(go)


def test_an_urlencoded_form_can_carry_the_archive(tmp_path: Path) -> None:
    runner = GateRunner()

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner) as client:
            source = archive({"u.py": b"u = 1\n"})
            # Raw bytes, percent-encoded (what curl --data-urlencode source@file sends).
            body = urlencode({"project_id": "p", "source": source})
            answer = await client.post(
                "submissions", params=q(), content=body, headers={"content-type": FORM}
            )
            assert answer.status_code == 201
            runner.release()
            await wait_final(client, answer.json()["id"])
            raw = await client.get(f"submissions/{answer.json()['id']}/source", params=q())
            assert raw.content == source
        assert runner.started[0].upload_dir.name == "upload"

    run(go)


@pytest.mark.parametrize(
    ("config_text", "form", "reason"),
    [
        ("{broken", {}, "not valid JSON"),
        (None, {"scenario": "nope"}, "no scenario 'nope'"),
        (None, {"project_config": "[1, 2"}, "project_config: not valid JSON"),
        (None, {"project_config": '{"scenarios": {"a": {}}}'}, "no scenario is marked"),
        (
            json.dumps({"scenarios": {"g": {"default": True, "limits": {"gpus": 1}}}}),
            {},
            "unknown limit 'gpus'",
        ),
    ],
)
def test_a_broken_config_ends_the_submission_as_22_with_the_reason(
    tmp_path: Path, config_text: str | None, form: dict[str, str], reason: str
) -> None:
    runner = GateRunner()
    if config_text is not None:
        make_project(tmp_path / "projects", "p", config_text)

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner) as client:
            answer = await submit(client, **form)
            assert answer.status_code == 201
            body = await wait_final(client, answer.json()["id"])
            assert body["result"]["status"] == {"code": 22, "name": "project error"}
            assert all(stage["skipped"] for stage in body["stages"].values())
            log = await client.get(f"submissions/{body['id']}/debug_log", params=q())
            assert reason in log.text
        assert runner.started == []

    run(go)


def test_scenario_and_project_config_choose_what_runs(tmp_path: Path) -> None:
    runner = GateRunner()
    two = {
        "version": 2.1,
        "scenarios": {
            "grade": {"default": True, "stages": {"run": {"command": "echo grade"}}},
            "fast": {"stages": {"run": {"command": "echo fast", "timeout": 3}}},
        },
    }
    make_project(tmp_path / "projects", "p", two)
    override = {
        "scenarios": {
            "x": {
                "default": True,
                "stages": {"test": {"command": "echo x"}},
                "limits": {"memory_mb": 64},
            }
        }
    }

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner) as client:
            for form in ({}, {"scenario": "fast"}, {"project_config": json.dumps(override)}):
                sid = (await submit(client, **form)).json()["id"]
                runner.release()
                body = await wait_final(client, sid)
                assert body["result"]["status"]["code"] == 15
            third = (await client.get("submissions/3", params=q())).json()
            assert third["scenario"] == "x"
            assert json.loads(third["project"]["config"]) == override
        commands = [[s.command for s in spec.stages if s.command] for spec in runner.started]
        assert commands == [["echo grade"], ["echo fast"], ["echo x"]]
        assert runner.started[1].stages[2].timeout == 3
        assert runner.started[2].limits.memory_mb == 64
        assert runner.started[0].project_dir == (tmp_path / "projects" / "p").resolve()

    run(go)


def test_batch_lookup_follows_the_documented_id_rules(tmp_path: Path) -> None:
    runner = GateRunner()

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=runner) as client:
            for _ in range(3):
                await submit(client)
            runner.release(3)
            for sid in (1, 2, 3):
                await wait_final(client, sid)
            cases = [
                ({}, 205104),
                ({"ids": ""}, 205104),
                ({"ids": " , "}, 205105),
                ({"ids": "1,a"}, 205105),
                ({"ids": "1;2"}, 205105),
                ({"ids": "1.5"}, 205105),
                ({"ids": ",".join(map(str, range(1, 22)))}, 205106),
                ({"ids": "1", "limit": "21"}, 10),
                ({"ids": "1", "limit": "x"}, 10),
                ({"ids": "1", "page_token": "!!"}, 10),
            ]
            for params, code in cases:
                answer = await client.get("submissions", params=q(**params))
                assert answer.status_code == 400 and answer.json()["error_code"] == code, params
            items = (await client.get("submissions", params=q(ids="3,99,1,3"))).json()["items"]
            assert [item["id"] for item in items] == [3, 1]
            assert items[0]["uri"] == f"{BASE}/submissions/3"
            first = (await client.get("submissions", params=q(ids="1,2,3", limit=2))).json()
            assert [i["id"] for i in first["items"]] == [1, 2]
            token = first["paging"]["next_page_token"]
            rest = (
                await client.get("submissions", params=q(ids="1,2,3", limit=2, page_token=token))
            ).json()
            assert [i["id"] for i in rest["items"]] == [3]
            assert rest["paging"]["next_page_token"] is None
            twenty = ",".join(map(str, range(1, 21)))
            assert (await client.get("submissions", params=q(ids=twenty))).status_code == 200

    run(go)


def test_framework_validation_errors_are_400_10_never_422(tmp_path: Path) -> None:
    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            for params in (
                {"limit": "abc"},
                {"limit": "31"},
                {"limit": "0"},
                {"states[]": "9"},
                {"states": "x"},
                {"page_token": "bm9wZQ=="},
            ):
                answer = await client.get("workspaces", params=q(**params))
                assert answer.status_code == 400, params
                body = answer.json()
                assert set(body) == {"message", "error_code"} and body["error_code"] == 10
                assert TOKEN not in body["message"]
            wrong_method = await client.delete("test", params=q())
            assert wrong_method.status_code == 405 and wrong_method.json()["error_code"] == 10
            nowhere = await client.get("nowhere", params=q())
            assert nowhere.status_code == 404 and set(nowhere.json()) == {"message", "error_code"}

    run(go)


async def statuses_become(client: httpx.AsyncClient, codes: list[int], seconds: float = 10) -> bool:
    """Whether submissions 1, 2, ... come to have these status codes within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        seen = [
            (await client.get(f"submissions/{sid}", params=q())).json()["result"]["status"]["code"]
            for sid in range(1, len(codes) + 1)
        ]
        if seen == codes or loop.time() > deadline:
            return seen == codes
        await asyncio.sleep(0.01)


def test_slots_bound_executions_and_stats_count_them(tmp_path: Path) -> None:
    runner = GateRunner()

    async def go() -> None:
        async with engine_client(make_config(tmp_path, slots=2), runner=runner) as client:
            stats = (await client.get("stats", params=q())).json()
            assert stats == {"workspace_slots": {"all": 2, "free": 2}}
            for _ in range(5):
                await submit(client)
            await wait_for(lambda: len(runner.started) == 2)
            stats = (await client.get("stats", params=q())).json()
            assert stats == {"workspace_slots": {"all": 2, "free": 0}}
            # the two running ones are marked executing on the event loop, just after the
            # runner has them: under load that can come a poll later
            assert await statuses_become(client, [3, 3, 0, 0, 0])
            runner.release()
            await wait_for(lambda: len(runner.started) == 3)
            runner.release(4)
            for sid in range(1, 6):
                assert (await wait_final(client, sid))["result"]["status"]["code"] == 15
            assert runner.peak == 2
            assert [spec.submission_id for spec in runner.started] == [1, 2, 3, 4, 5]
            stats = (await client.get("stats", params=q())).json()
            assert stats == {"workspace_slots": {"all": 2, "free": 2}}

    run(go)


def test_a_failing_runner_is_an_internal_error_not_a_grade(tmp_path: Path) -> None:
    def broken(spec: Any, cancel: Any) -> Any:
        raise RuntimeError("sandbox exploded")

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=broken) as client:
            sid = (await submit(client)).json()["id"]
            body = await wait_final(client, sid)
            assert body["result"]["status"] == {"code": 20, "name": "internal error"}
            log = await client.get(f"submissions/{sid}/debug_log", params=q())
            assert "RuntimeError: sandbox exploded" in log.text

    run(go)


def test_leaving_the_engine_cancels_runs_and_leaves_no_thread(tmp_path: Path) -> None:
    runner = GateRunner()
    before = {t.ident for t in threading.enumerate()}

    async def go() -> None:
        async with engine_client(make_config(tmp_path, slots=1), runner=runner) as client:
            await submit(client)
            await submit(client)
            await wait_for(lambda: len(runner.started) == 1)

    run(go)
    assert runner.cancelled == [1]
    assert {t.ident for t in threading.enumerate()} == before
    assert list((tmp_path / "data" / "incoming").iterdir()) == []
    assert not (tmp_path / "data" / "submissions" / "1" / "work").exists()


def test_the_openapi_document_lists_every_method(tmp_path: Path) -> None:
    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            document = (await client.get("http://127.0.0.1:8080/openapi.json")).json()
        paths = document["paths"]
        assert set(paths) >= {
            "/api/v1/test",
            "/api/v1/stats",
            "/api/v1/workspaces",
            "/api/v1/workspaces/{workspace_id}",
            "/api/v1/submissions",
            "/api/v1/submissions/{submission_id}",
            "/api/v1/submissions/{submission_id}/{stream}",
        }
        assert set(paths["/api/v1/submissions"]) == {"get", "post"}
        post = paths["/api/v1/submissions"]["post"]
        assert "multipart/form-data" in post["requestBody"]["content"]
        assert document["components"]["securitySchemes"]["access_token"]["in"] == "query"

    run(go)


def test_the_token_never_reaches_logs_or_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=GateRunner()) as client:
            answers = [
                await client.get("test", params=q()),
                await client.get("submissions", params=q(ids="x")),
                await client.get("workspaces", params=q(limit="x")),
                await submit(client, project="nope"),
            ]
        assert all(TOKEN not in answer.text for answer in answers)

    run(go)
    # httpx's own client log shows our test's URL; the engine's records must not.
    engine_log = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("grader", "uvicorn"))
    )
    assert "GET /api/v1/test 200" in engine_log
    assert TOKEN not in engine_log
    assert TOKEN not in repr(make_config(tmp_path))


def test_a_project_removed_before_its_turn_ends_the_submission_as_22(tmp_path: Path) -> None:
    runner = GateRunner()
    make_project(tmp_path / "projects", "gone", grading_config())

    async def go() -> None:
        async with engine_client(make_config(tmp_path, slots=1), runner=runner) as client:
            await submit(client)
            await submit(client)  # prepared ahead of the slot (the lookahead of one)
            waiting = (await submit(client, project="gone")).json()["id"]
            await wait_for(lambda: len(runner.started) == 1)
            shutil.rmtree(tmp_path / "projects" / "gone")
            runner.release(2)
            body = await wait_final(client, waiting)
            assert body["result"]["status"]["code"] == 22
            log = await client.get(f"submissions/{waiting}/debug_log", params=q())
            assert "project 'gone' does not exist" in log.text
        assert [spec.project_id for spec in runner.started] == ["p", "p"]

    run(go)


def test_runner_output_outside_the_contract_is_not_trusted(tmp_path: Path) -> None:
    outside = tmp_path / "host-secret.txt"
    outside.write_text("secret")

    def odd(spec: RunSpec, cancel: Cancel) -> RunOutcome:
        mine = spec.work_dir / "out"
        mine.write_text("fine")
        link = spec.work_dir / "link"
        link.symlink_to(outside)
        streams = {
            "stage_run_output": mine,
            "stage_run_error": outside,
            "stage_test_output": link,
            "made_up": mine,
        }
        return RunOutcome(status=7, stages=(), streams=streams, score=float("nan"))

    async def go() -> None:
        async with engine_client(make_config(tmp_path), runner=odd) as client:
            sid = (await submit(client)).json()["id"]
            body = await wait_final(client, sid)
            assert body["result"]["status"]["code"] == 20 and body["result"]["score"] is None
            assert body["streams"]["stage_run_output"]["size"] == 4
            assert body["streams"]["stage_run_error"] is None
            assert body["streams"]["stage_test_output"] is None
            log = (await client.get(f"submissions/{sid}/debug_log", params=q())).text
            assert "status 7, which is not final" in log
            assert "ignored stream 'made_up'" in log and "ignored stream 'stage_run_error'" in log
        assert outside.read_text() == "secret"

    run(go)
