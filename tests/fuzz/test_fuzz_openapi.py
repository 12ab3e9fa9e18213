"""Schemathesis against the engine's published OpenAPI document, over a real socket.

The engine is a real `grader engine serve` process and the document is the one it
serves at ``/openapi.json``. Every case is sent with the token (the document's
``access_token`` query scheme) and a bounded timeout, so a hang fails the case
instead of stalling CI; no answer may be a 5xx or carry the token. The unmarked test
runs a few cases on every operation; the ``slow`` one runs many more, schema-breaking
(negative) ones included.

Cases are drawn from schemathesis' strategies inside plain hypothesis tests: its own
pytest loader (``schemathesis.pytest.from_fixture``) does not run under pytest 9
(it reads ``request.node._nodeid``, which pytest 9 no longer has).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.support.course_kit import write_project
from tests.support.served import ServedEngine, served_engine

CALL_SECONDS = 10.0  # a hang fails the case well before any CI timeout
OPERATIONS = [
    ("GET", "/api/v1/test"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/workspaces"),
    ("POST", "/api/v1/workspaces"),
    ("GET", "/api/v1/workspaces/{workspace_id}"),
    ("GET", "/api/v1/submissions"),
    ("POST", "/api/v1/submissions"),
    ("GET", "/api/v1/submissions/{submission_id}"),
    ("GET", "/api/v1/submissions/{submission_id}/{stream}"),
    ("GET", "/workspace/{workspace_id}"),
]
"""Every operation the document publishes (checked below), so each one gets cases."""

HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.fixture(scope="module")
def fuzzed_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEngine]:
    root = tmp_path_factory.mktemp("fuzzed")
    write_project(root / "projects")
    with served_engine(root / "projects", root, slots=1) as served:
        yield served


@pytest.fixture(scope="module")
def published(fuzzed_engine: ServedEngine) -> Any:
    """The document as the engine serves it."""
    return schemathesis.openapi.from_url(f"{site_of(fuzzed_engine)}/openapi.json")


def site_of(engine: ServedEngine) -> str:
    return engine.url.removesuffix("/api/v1")


def send(case: Any, engine: ServedEngine) -> None:
    case.query = {**(case.query or {}), "access_token": engine.token}
    response = case.call(base_url=site_of(engine), timeout=CALL_SECONDS)
    case.validate_response(response, checks=[not_a_server_error])
    assert engine.token not in response.text


def test_the_fuzzed_operations_are_every_published_one(published: Any) -> None:
    found = [(op.ok().method.upper(), op.ok().path) for op in published.get_all_operations()]
    assert sorted(found) == sorted(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@settings(max_examples=12, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_every_operation_answers_without_5xx_or_hanging(
    method: str, path: str, data: st.DataObject, published: Any, fuzzed_engine: ServedEngine
) -> None:
    case = data.draw(published[path][method].as_strategy(), label="case")
    send(case, fuzzed_engine)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@settings(max_examples=60, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_schema_breaking_requests_never_get_5xx_or_hang(
    mode: GenerationMode,
    method: str,
    path: str,
    data: st.DataObject,
    published: Any,
    fuzzed_engine: ServedEngine,
) -> None:
    case = data.draw(published[path][method].as_strategy(mode), label="case")
    send(case, fuzzed_engine)
