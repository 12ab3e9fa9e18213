"""How long one submission is followed: the project's stage timeouts plus a margin."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from grader.config import DEFAULT_SUBMISSION_MARGIN, DEFAULT_SUBMISSION_TIMEOUT, load_course
from grader.deadlines import DEFAULT_STAGE_SECONDS, deadline_for, follow_deadline, stage_seconds
from grader.pipeline import project_config

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"

CONFIG = {
    "version": 2.1,
    "scenarios": {
        "grade": {
            "default": True,
            "stages": {
                "build": {"command": "make", "timeout": 30},
                "run": {"command": "./run", "timeout": 20},
                "test": {"command": "se_utils_cli evaluate"},  # no timeout: the default
                "post": {"command": "true", "timeout": 5, "skip": True},
                "init": {"command": None, "timeout": 99},
            },
        },
        "quick": {"stages": {"run": {"command": "./run", "timeout": 3}}},
    },
}


def test_the_stages_that_run_add_up_their_timeouts() -> None:
    text = json.dumps(CONFIG)
    assert stage_seconds(text, None) == 30 + 20 + DEFAULT_STAGE_SECONDS
    assert stage_seconds(text, "quick") == 3


def test_a_config_that_cannot_be_read_gives_no_stage_time() -> None:
    for text in ("", "not json", "[]", '{"scenarios": {}}', json.dumps(CONFIG)[:-5]):
        assert stage_seconds(text, None) is None
    assert stage_seconds(json.dumps(CONFIG), "missing") is None
    bad = json.loads(json.dumps(CONFIG))
    bad["scenarios"]["quick"]["stages"]["run"]["timeout"] = "soon"
    assert stage_seconds(json.dumps(bad), "quick") is None


def test_the_deadline_is_the_stages_plus_the_margin_unless_one_is_configured() -> None:
    margin = timedelta(minutes=2)
    assert follow_deadline(50.0, margin=margin, configured=None) == timedelta(seconds=170)
    assert follow_deadline(None, margin=margin, configured=None) == DEFAULT_SUBMISSION_TIMEOUT
    fixed = timedelta(seconds=3)
    assert follow_deadline(50.0, margin=margin, configured=fixed) == fixed


def test_each_assignment_of_the_sample_course_gets_its_projects_deadline() -> None:
    course = load_course(SAMPLE)
    for assignment in course.assignments.values():
        config = project_config(course.projects_dir, assignment.project)
        assert config is not None
        stages = stage_seconds(config, assignment.scenario)
        assert stages is not None and stages > 0
        expected = timedelta(seconds=stages) + DEFAULT_SUBMISSION_MARGIN
        assert deadline_for(course.engine, assignment.scenario, config) == expected


def test_margin_and_fixed_deadline_come_from_the_engine_table(tmp_path: Path) -> None:
    (tmp_path / "course.toml").write_text(
        '[course]\nname = "C"\n\n[engine]\nsubmission_margin = "30s"\n\n'
        '[assignments.hw1]\ndeadline = 2026-10-01T23:59:00Z\nrepo = "r/{student_id}"\n'
    )
    engine = load_course(tmp_path).engine
    assert engine.submission_margin == timedelta(seconds=30)
    assert engine.submission_timeout is None
    missing = project_config(tmp_path / "projects", "hw1")  # only on the service, say
    assert missing is None
    assert deadline_for(engine, None, missing) == DEFAULT_SUBMISSION_TIMEOUT
    (tmp_path / "projects" / "hw1").mkdir(parents=True)
    (tmp_path / "projects" / "hw1" / "config.json").write_text(json.dumps(CONFIG))
    config = project_config(tmp_path / "projects", "hw1")
    assert deadline_for(engine, None, config) == timedelta(seconds=30 + 20 + 60 + 30)
    text = (tmp_path / "course.toml").read_text()
    (tmp_path / "course.toml").write_text(text.replace('margin = "30s"', 'timeout = "1m"'))
    assert deadline_for(load_course(tmp_path).engine, None, config) == timedelta(minutes=1)
