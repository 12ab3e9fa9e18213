"""Project folders and config.json (version 2.1) -> scenarios and run specs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grader.engine.projects import build_run_spec, find_project, resolve_scenario
from grader.engine.spec import STAGE_ORDER, Limits
from grader.errors import ConfigError, CreationFailedError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course" / "projects"


def config(**scenario: Any) -> str:
    body = {"default": True, "stages": {"run": {"command": "make run", "timeout": 5}}}
    body.update(scenario)
    return json.dumps({"version": 2.1, "scenarios": {"grade": body}})


def test_the_sample_course_projects_resolve_to_their_stages() -> None:
    project = find_project(SAMPLE, "hw2")
    assert project.config_text is not None
    scenario = resolve_scenario(project.config_text, None, source="hw2/config.json")
    assert scenario.name == "grade"
    assert [s.name for s in scenario.stages] == list(STAGE_ORDER)
    build = scenario.stages[1]
    assert build.command == "gcc -std=c11 -Wall -O2 -o prog src/*.c" and build.timeout == 10
    assert scenario.stages[0].command is None
    assert scenario.read_only == (".sphere-engine",)
    assert scenario.limits == Limits()


def test_a_named_scenario_wins_over_the_default() -> None:
    text = json.dumps(
        {
            "version": 2.1,
            "scenarios": {
                "grade": {"default": True, "stages": {"run": {"command": "a"}}},
                "run": {"stages": {"run": {"command": "b"}}, "network": True},
            },
        }
    )
    scenario = resolve_scenario(text, "run", source="p/config.json")
    assert scenario.name == "run" and scenario.network
    assert scenario.stages[2].command == "b"


def test_local_limits_become_the_run_limits() -> None:
    limits = {
        "memory_mb": 256,
        "processes": 16,
        "output_bytes": 5000,
        "disk_mb": 64,
        "open_files": 64,
        "file_size_mb": 8,
        "read_only_paths": ["/opt/jdk"],
    }
    scenario = resolve_scenario(config(limits=limits), None, source="p/config.json")
    assert scenario.limits == Limits(256, 16, 5000, 64, 64, 8, ("/opt/jdk",))


@pytest.mark.parametrize(
    ("text", "requested", "where", "reason"),
    [
        ("{not json", None, None, "not valid JSON"),
        ("[]", None, None, "must be a JSON object"),
        (json.dumps({"version": 3, "scenarios": {}}), None, None, "version must be 2.1"),
        (json.dumps({"version": 2.1}), None, "scenarios", "at least one scenario"),
        (config(), "nope", "scenarios", "no scenario 'nope' (the project has: grade)"),
        (config(default=False), None, "scenarios", "no scenario is marked"),
        (config(network="yes"), None, "scenarios.grade.network", "must be true or false"),
        (config(stages={"compile": {}}), None, "scenarios.grade.stages", "unknown stage"),
        (
            config(stages={"run": {"command": 7}}),
            None,
            "scenarios.grade.stages.run.command",
            "must be a string",
        ),
        (
            config(stages={"run": {"timeout": "5"}}),
            None,
            "scenarios.grade.stages.run.timeout",
            "number of seconds",
        ),
        (
            config(stages={"run": {"timeout": -1}}),
            None,
            "scenarios.grade.stages.run.timeout",
            "number of seconds",
        ),
        (config(limits={"cpus": 2}), None, "scenarios.grade.limits", "unknown limit 'cpus'"),
        (
            config(limits={"memory_mb": 0}),
            None,
            "scenarios.grade.limits.memory_mb",
            "whole number above 0",
        ),
        (
            config(limits={"memory_mb": True}),
            None,
            "scenarios.grade.limits.memory_mb",
            "whole number above 0",
        ),
        (
            config(limits={"read_only_paths": ["opt"]}),
            None,
            "scenarios.grade.limits.read_only_paths[0]",
            "absolute path",
        ),
    ],
)
def test_a_broken_config_names_the_file_key_and_reason(
    text: str, requested: str | None, where: str | None, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_scenario(text, requested, source="p/config.json")
    assert caught.value.file == "p/config.json"
    assert caught.value.where == where
    assert reason in str(caught.value)


def test_two_default_scenarios_are_a_broken_config() -> None:
    text = json.dumps({"scenarios": {"a": {"default": True}, "b": {"default": True}}})
    with pytest.raises(ConfigError, match="more than one default scenario: a, b"):
        resolve_scenario(text, None, source="p/config.json")


def test_read_only_paths_must_stay_inside_the_workspace() -> None:
    text = json.dumps({"scenarios": {"a": {"default": True}}, "files": {"read_only": ["../x"]}})
    with pytest.raises(ConfigError) as caught:
        resolve_scenario(text, None, source="p/config.json")
    assert caught.value.where == "files.read_only[0]"


@pytest.mark.parametrize("project_id", ["nope", "../hw1", ".hidden", "a/b", "", "x" * 200])
def test_an_unknown_or_unsafe_project_id_is_creation_failed(project_id: str) -> None:
    with pytest.raises(CreationFailedError) as caught:
        find_project(SAMPLE, project_id)
    assert caught.value.error_code == 1003
    assert repr(project_id[:20])[:-1] in caught.value.api_message


def test_a_project_without_readable_config_says_why(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "config.json").write_bytes(b"\xff\xfe{")
    assert "cannot be read" in (find_project(tmp_path, "empty").problem or "")
    assert "not UTF-8" in (find_project(tmp_path, "binary").problem or "")


def test_the_run_spec_carries_every_stage_and_the_folders(tmp_path: Path) -> None:
    project = find_project(SAMPLE, "hw1")
    assert project.config_text is not None
    scenario = resolve_scenario(project.config_text, "grade", source="hw1/config.json")
    spec = build_run_spec(7, project, scenario, upload_dir=tmp_path / "u", work_dir=tmp_path / "w")
    assert spec.submission_id == 7 and spec.project_id == "hw1"
    assert spec.project_dir == (SAMPLE / "hw1").resolve()
    assert tuple(s.name for s in spec.stages) == STAGE_ORDER
    assert spec.read_only == (".sphere-engine",) and spec.network is False
