"""One log file per run, even when two runs start within the same second (cron, scripts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from grader.grading import GradeOptions, grade
from tests.support.repos import GOOD, commit

EARLIER = "an earlier run's line\n"


def test_a_run_never_appends_to_the_log_of_an_earlier_run_in_the_same_second(
    tiny_course: Path,
) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", datetime(2026, 9, 1))
    logs = tiny_course / ".grader" / "logs"
    logs.mkdir(parents=True)
    now = datetime.now(UTC)
    # the logs a run that started within the same second as this one would have left
    for second in range(60):
        stamp = (now + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
        (logs / f"grade-{stamp}.log").write_text(EARLIER)

    result = grade(GradeOptions(tiny_course, students=("ada",)))

    assert result.log_file.read_text().count(EARLIER) == 0
    assert [p for p in logs.iterdir() if p.read_text() != EARLIER] == [result.log_file]
