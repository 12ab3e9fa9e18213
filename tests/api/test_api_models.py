"""Parsing the API's JSON: both stage naming schemes, unknown codes, missing fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from grader.api.models import (
    STAGES,
    Submission,
    parse_date,
    parse_stats,
    parse_submission,
    parse_workspace,
    parse_workspace_page,
)
from grader.codec import from_json, to_json

EXAMPLES = Path(__file__).parent / "examples"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def test_reference_example_maps_to_canonical_stages_and_streams() -> None:
    sub = parse_submission(example("reference_submission.json"))
    assert sub.id == 1 and sub.final and sub.result.status.name == "ok"
    assert tuple(sub.stages) == STAGES
    assert sub.stages["run"].time == 4.2
    assert sub.stages["build"].status is not None and sub.stages["build"].status.code == 15
    assert "stage_build_output" in sub.streams and "stage_compilation_output" not in sub.streams
    assert sub.streams["stage_test_output"] is not None
    assert sub.result.memory == 239421 and sub.date is not None and sub.date.year == 2021


def test_quickstart_example_reads_exit_codes_null_streams_and_scenario() -> None:
    sub = parse_submission(example("quickstart_submission.json"))
    assert sub.id == 42 and sub.scenario == "run"
    assert tuple(sub.stages) == STAGES
    assert sub.stages["test"].exit_code == 0 and sub.stages["test"].signal is None
    assert sub.streams["stage_build_error"] is None
    ref = sub.streams["tests_report"]
    assert ref is not None and ref.size == 8774


def test_reference_list_example_parses_every_item() -> None:
    items = example("reference_submissions.json")["items"]
    subs = [parse_submission(i) for i in items]
    assert [s.id for s in subs] == [1, 42]
    assert all(tuple(s.stages) == STAGES for s in subs)


def test_unknown_status_code_is_kept_with_its_name() -> None:
    sub = parse_submission({"id": 3, "result": {"status": {"code": 17, "name": "memory"}}})
    assert (sub.result.status.code, sub.result.status.name, sub.final) == (17, "memory", True)


def test_running_status_is_not_final() -> None:
    sub = parse_submission({"id": 3, "executing": True, "result": {"status": {"code": 3}}})
    assert not sub.final and sub.result.status.name == "execution"


def test_missing_and_null_fields_get_defaults() -> None:
    sub = parse_submission({"id": 9, "result": None, "streams": None, "stages": {"run": None}})
    assert sub.result.status.code == 0 and sub.result.score is None
    assert sub.streams == {} and sub.stages["run"].time is None and sub.date is None


def test_submission_round_trips_through_the_state_codec() -> None:
    sub = parse_submission(example("quickstart_submission.json"))
    assert from_json(Submission, to_json(sub)) == sub


def test_workspace_state_code_as_string_or_int() -> None:
    raw = example("reference_workspace.json")
    assert parse_workspace(raw).state.code == 4
    raw["state"]["code"] = "2"
    ws = parse_workspace(raw)
    assert ws.state.code == 2 and ws.terminated_at is not None


def test_workspace_pages_and_stats_examples() -> None:
    page = parse_workspace_page(example("reference_workspaces.json"))
    assert [w.state.code for w in page.items] == [4, 2]
    assert page.next_page_token == "MTA=" and page.items[1].terminated_at is None
    stats = parse_stats(example("reference_stats.json"))
    assert (stats.all, stats.free) == (200, 185)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
submission_like = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("id", "executing", "date", "project", "result", "streams", "stages", "scenario"),
        json_values,
    ),
)


@settings(deadline=None)  # the first examples pay for imports; speed is not the point
@given(submission_like)
def test_any_json_shape_parses_without_crashing(raw: dict[str, Any]) -> None:
    sub = parse_submission(raw)
    assert isinstance(sub.result.status.code, int)
    assert all(
        name in STAGES or name not in ("compilation", "execution", "judge") for name in sub.stages
    )


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_the_documented_date_form_reads_as_strptime_reads_it(
    moment: datetime, minutes: int
) -> None:
    zone = timezone(timedelta(minutes=minutes))
    text = moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")
    found = parse_date(text)
    assert found == datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    assert found is not None and found.utcoffset() == timedelta(minutes=minutes)


def test_dates_that_are_not_dates_read_as_none_and_iso_8601_is_read_too() -> None:
    for text in ("2026-13-30 11:15:02 +0000", "2026-11-30 11:15:02 +2500", "x", "", None, 7):
        assert parse_date(text) is None
    assert parse_date("2026-11-30T11:15:02Z") == datetime(2026, 11, 30, 11, 15, 2, tzinfo=UTC)
