"""manifest/<student_id>.json: provenance of each grade, deterministic, no hidden test names."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from grader.reports.manifest import render_manifest, write_manifests
from tests.reports.conftest import SHA, MakeOutcome


def test_manifest_names_commit_archive_submission_and_score(make_outcome: MakeOutcome) -> None:
    outcome = make_outcome(failing={"test_hidden_word_count_punctuation": "boom"})
    data = json.loads(render_manifest(outcome))
    assert data["commit"] == SHA
    assert data["archive_sha256"] == "f" * 64
    assert data["submission_id"] == 42
    assert (data["score"], data["max_score"]) == (90.0, 100.0)
    assert data["student_id"] == "bchen" and data["assignment"] == "hw1"


def test_manifest_never_carries_test_names_or_messages(make_outcome: MakeOutcome) -> None:
    outcome = make_outcome(failing={"test_hidden_word_count_punctuation": "secret message"})
    text = render_manifest(outcome).decode()
    assert "test_hidden_word_count_punctuation" not in text
    assert "secret message" not in text


def test_not_graded_student_has_no_score_not_zero(make_outcome: MakeOutcome) -> None:
    outcome = make_outcome(status="not graded", outcome="repository unavailable")
    data = json.loads(render_manifest(outcome))
    assert data["score"] is None
    assert data["status"] == "not graded"


def test_manifests_are_the_same_bytes_every_time(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    outcomes = [make_outcome("amartin"), make_outcome("dnovak", lateness=timedelta(hours=30))]
    first = [p.read_bytes() for p in write_manifests(outcomes, tmp_path)]
    second = [p.read_bytes() for p in write_manifests(outcomes, tmp_path)]
    assert first == second
    assert sorted(p.name for p in (tmp_path / "manifest").iterdir()) == [
        "amartin.json",
        "dnovak.json",
    ]
