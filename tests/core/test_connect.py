"""Engine selection: flag > environment > course config > the in-process engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.config import load_course
from grader.connect import LOCAL_BASE_URL, choose_engine, client_settings
from grader.errors import ConfigError


def test_in_process_engine_is_polled_at_local_speed(tiny_course: Path) -> None:
    course = load_course(tiny_course)
    settings = client_settings(choose_engine(course, environ={}), course, concurrency=None)
    assert settings.base_url == LOCAL_BASE_URL
    assert settings.is_local  # milliseconds between polls, not the cloud's seconds


def test_flag_beats_environment_beats_config(tiny_course: Path) -> None:
    toml = tiny_course / "course.toml"
    toml.write_text(
        toml.read_text().replace(
            "[assignments.add]", '[engine]\nurl = "https://cfg.example/api/v1"\n\n[assignments.add]'
        )
    )
    course = load_course(tiny_course)
    env = {"SPHERE_ENGINE_URL": "https://env.example/api/v1", "SPHERE_ENGINE_TOKEN": "t0k"}
    assert choose_engine(course, url="https://flag.example/api/v1/", environ=env).url == (
        "https://flag.example/api/v1"
    )
    assert choose_engine(course, environ=env).url == "https://env.example/api/v1"
    assert choose_engine(course, environ={"SPHERE_ENGINE_TOKEN": "t0k"}).url == (
        "https://cfg.example/api/v1"
    )


def test_remote_engine_without_token_names_the_variable(tiny_course: Path) -> None:
    course = load_course(tiny_course)
    with pytest.raises(ConfigError, match="SPHERE_ENGINE_TOKEN") as caught:
        choose_engine(course, url="https://x.example/api/v1", environ={})
    assert "course.toml" in str(caught.value)


def test_engine_choice_repr_hides_the_token(tiny_course: Path) -> None:
    course = load_course(tiny_course)
    choice = choose_engine(
        course, url="https://x.example/api/v1", environ={"SPHERE_ENGINE_TOKEN": "s3cret-v4lue"}
    )
    assert "s3cret-v4lue" not in repr(choice)
    assert "s3cret-v4lue" not in repr(client_settings(choice, course, concurrency=None))


def test_retry_settings_come_from_the_engine_table(tiny_course: Path) -> None:
    toml = tiny_course / "course.toml"
    table = (
        "[engine]\nmax_attempts = 3\nbackoff_base = 0.01\nbackoff_cap = 0.1\n"
        "retry_deadline = 5\nrequest_timeout = 2\n\n[assignments.add]"
    )
    toml.write_text(toml.read_text().replace("[assignments.add]", table))
    course = load_course(tiny_course)
    settings = client_settings(choose_engine(course, environ={}), course, concurrency=None)
    policy = settings.retry_policy
    assert (settings.max_attempts, settings.timeout) == (3, 2.0)
    assert (settings.backoff_base, settings.backoff_cap, settings.deadline) == (0.01, 0.1, 5.0)
    assert policy.max_attempts == 3


def test_request_rate_is_polite_remotely_and_unlimited_on_this_machine(tiny_course: Path) -> None:
    course = load_course(tiny_course)
    env = {"SPHERE_ENGINE_TOKEN": "t0k"}
    remote = choose_engine(course, url="https://x.example/api/v1", environ=env)
    loopback = choose_engine(course, url="http://127.0.0.1:8080/api/v1", environ=env)
    local = choose_engine(course, environ={})
    rate = {
        name: client_settings(choice, course, concurrency=None).requests_per_second
        for name, choice in (("remote", remote), ("loopback", loopback), ("local", local))
    }
    assert rate == {"remote": 10.0, "loopback": 1000.0, "local": 1000.0}
