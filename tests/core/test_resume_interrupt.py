"""Ctrl-C twice stops a run at once and cleanly: no traceback, exit 130, resumable."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.course_kit import make_course
from tests.support.crashkit import last_run_id
from tests.support.served import grader_env


def test_ctrl_c_twice_while_fetching_stops_without_a_python_traceback(tmp_path: Path) -> None:
    course = make_course(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(course)],
        capture_output=True,
        env=grader_env(),
        check=False,
    )  # mirrors made and everyone graded once: the next runs read git at local speed
    failures = []
    for attempt in range(1, 5):
        with subprocess.Popen(
            [sys.executable, "-m", "grader", "grade", str(course), "--force"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=grader_env(),
        ) as process:
            while last_run_id(course) <= attempt and process.poll() is None:
                time.sleep(0.002)  # the run has started: git is fetching and packaging
            time.sleep(0.2 * attempt)
            process.send_signal(signal.SIGINT)
            time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
        # 130, or click's "Aborted!" (1) when the second Ctrl-C lands while outputs are written
        assert process.returncode in (130, 1), err
        if "Traceback" in err:
            failures.append(err)
    assert failures == [], failures[0]
