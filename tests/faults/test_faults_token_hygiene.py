"""The access token appears nowhere after a run that takes every error path.

Through the CLI (``CliRunner``) against a real served engine behind the fault proxy:
a wrong token (401: exit 3, one clear line), then the right one with 5xx and 429
answers, resets before and after forwarding, truncated bodies, a gateway 504, and one
student whose create fails on every attempt (not graded, infrastructure; never a
zero). Afterwards every byte under the course folder, the engine's data and log, the
CLI's output and the captured log records are searched for both tokens.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from grader.cli import main
from grader.connect import URL_ENV
from tests.faults.proxy import PASS, FaultPlan, FaultProxy
from tests.support.course_kit import PROJECT, write_course
from tests.support.served import ServedEngine

pytestmark = [pytest.mark.faults, pytest.mark.sandbox]

WRONG_TOKEN = "tok-wrong-9f3e1c7a5b"
STUDENTS = ("s01", "s02", "s10", "s12")
CREATE = "POST /submissions"
POLL = "GET /submissions"
STREAM = "GET /submissions/:id/:stream"
SCRIPT = (
    # the first create fails all six attempts (the client's default max_attempts); on
    # the last one the engine creates it and the answer is lost
    *[(CREATE, "status_429")] * 5,
    (CREATE, "reset_after"),
    # then one of each kind on the next calls, each followed by a successful attempt
    *[(CREATE, kind) for f in ("gateway_504", "truncate", "reset_before") for kind in (f, PASS)],
    *[(POLL, kind) for f in ("status_503", "reset_before", "truncate") for kind in (f, PASS)],
    *[(STREAM, kind) for f in ("truncate", "reset_after", "status_429") for kind in (f, PASS)],
    ("GET /stats", "status_503"),
)

EVERY_ERROR_PATH = FaultPlan(
    rates={"status_503": 0.05, "status_429": 0.05, "reset_before": 0.03, "truncate": 0.03},
    seed=5,
    retry_after=("0",),
    script=SCRIPT,
    max_streak=1,
)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def files_holding(secret: bytes, *roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            try:
                if path.is_file() and secret in path.read_bytes():
                    found.append(str(path))
            except FileNotFoundError:  # the engine removes a run's folders when it ends
                continue
    return found


def test_no_error_path_of_a_whole_run_reveals_the_token(
    engine: ServedEngine,
    proxy: FaultProxy,
    student_repos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv(URL_ENV, raising=False)
    course = write_course(tmp_path / "course", student_repos, students=STUDENTS, infra_retries=0)

    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", WRONG_TOKEN)
    # One student: with several, the 401 leaves the others' tasks to be cancelled at
    # asyncio.run's shutdown, which can hang inside a git subprocess's creation on
    # Python 3.11 (test_faults_fatal_error.py shows it).
    refused = cli("grade", str(course), "--engine", proxy.url, "-s", STUDENTS[0])
    assert refused.exit_code == 3, refused.output
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "unauthorized" in refused.stderr and "401" in refused.stderr, refused.stderr

    monkeypatch.setenv("SPHERE_ENGINE_TOKEN", engine.token)
    ledger = proxy.set_plan(EVERY_ERROR_PATH)
    before = engine.last_submission_id()
    graded = cli("grade", str(course), "--engine", proxy.url, "--concurrency", "1")
    status = cli("status", str(course))
    assert graded.exit_code == 1, graded.output
    injected = ledger.by_kind()
    print(f"faults injected: {injected}; engine submissions: {engine.submissions_after(before)}")
    assert set(injected) >= {kind for _, kind in SCRIPT} - {PASS}
    assert ledger.count(route=CREATE) >= 9  # the script's
    print(graded.output)

    with (course / "out" / PROJECT / "gradebook.csv").open() as fp:
        rows = {row["student_id"]: row for row in csv.DictReader(fp)}
    infra = [s for s, row in rows.items() if row["status"] != "graded"]
    assert len(infra) == 1, rows
    assert (rows[infra[0]]["outcome"], rows[infra[0]]["score"]) == ("infrastructure", "")
    assert "NOT GRADED" in graded.output and "infrastructure" in graded.output
    assert all(rows[s]["score"] != "" for s in STUDENTS if s not in infra)

    texts = {
        "401 run output": refused.output,
        "graded run output": graded.output,
        "status output": status.output,
        "captured logs": caplog.text + "".join(repr(r.args) for r in caplog.records),
    }
    for secret in (engine.token, WRONG_TOKEN):
        assert [name for name, text in texts.items() if secret in text] == []
        roots = (course, engine.data_dir, engine.log_file.parent)
        assert files_holding(secret.encode(), *roots) == []
