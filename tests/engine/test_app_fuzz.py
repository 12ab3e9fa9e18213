"""Fuzzing every operation of the published OpenAPI document over a real socket: the
engine never answers 5xx or 422, and every error has the documented body."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.engine.app import create_app
from tests.engine.appkit import TOKEN, GateRunner, archive, make_config

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

texts = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=30)
values = st.one_of(
    texts,
    st.integers(-5, 40).map(str),
    st.sampled_from(["1,2", "1,a", "", "MTA=", "bm9wZQ==", "p", "grade", "%00", "-1", "1e3"]),
)
tokens = st.sampled_from([TOKEN, TOKEN, TOKEN, "", "wrong", TOKEN + " "]).map(
    lambda t: {"access_token": t} if t else {}
)


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    runner = GateRunner()
    runner.release(10_000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1"
    app = create_app(make_config(Path(root), base_url=url, slots=2), runner=runner)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def operations(engine_url: str) -> list[tuple[str, str, list[str]]]:
    """(method, path template, query parameter names) for every documented operation."""
    document = httpx.get(engine_url.removesuffix("/api/v1") + "/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            found.append((method.upper(), path, names))
    assert len(found) >= 10
    return found


def check(answer: httpx.Response, authorized: bool) -> None:
    assert answer.status_code < 500, answer.text
    assert answer.status_code != 422, answer.text
    if not authorized:
        assert answer.status_code == 401
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) == {"message", "error_code"}, body
        assert isinstance(body["error_code"], int) and isinstance(body["message"], str)
        assert TOKEN not in body["message"]


@SETTINGS
@given(data=st.data())
def test_any_query_on_any_operation_gets_a_documented_answer(
    engine_url: str, operations: list[tuple[str, str, list[str]]], data: st.DataObject
) -> None:
    method, template, names = data.draw(st.sampled_from(operations))
    path = template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        segment = data.draw(st.one_of(st.integers(-3, 50).map(str), texts.filter(bool)))
        path = path[:start] + quote(segment, safe="") + path[end + 1 :]
    params = data.draw(st.dictionaries(st.sampled_from([*names, "states[]", "junk"]), values))
    auth = data.draw(tokens)
    form = data.draw(
        st.dictionaries(st.sampled_from(["project_id", "scenario", "project_config", "x"]), values)
    )
    root = engine_url.removesuffix("/api/v1")
    with httpx.Client(timeout=30) as client:
        answer = client.request(
            method, root + path, params={**params, **auth}, data=form if method == "POST" else None
        )
    check(answer, auth.get("access_token") == TOKEN)


@SETTINGS
@given(
    project=st.sampled_from(["p", "nope", "", "../p"]),
    source=st.one_of(st.binary(max_size=300), st.just(archive()), st.none()),
    scenario=st.one_of(st.none(), st.sampled_from(["grade", "nope", ""])),
    project_config=st.one_of(st.none(), texts, st.just('{"scenarios": {}}')),
)
def test_any_submission_form_is_accepted_or_refused_as_documented(
    engine_url: str,
    project: str,
    source: bytes | None,
    scenario: str | None,
    project_config: str | None,
) -> None:
    form: dict[str, Any] = {"project_id": project}
    if scenario is not None:
        form["scenario"] = scenario
    if project_config is not None:
        form["project_config"] = project_config
    files = None if source is None else {"source": ("s.tar.gz", source)}
    with httpx.Client(timeout=30) as client:
        answer = client.post(
            f"{engine_url}/submissions", params={"access_token": TOKEN}, data=form, files=files
        )
    check(answer, True)
    assert answer.status_code in (201, 400)
    if answer.status_code == 400:
        assert answer.json()["error_code"] in (10, 1003)
