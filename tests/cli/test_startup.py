"""What `grader grade` loads before its first submission goes out.

The outputs (grader.outputs, jinja2, every report) and pandas are loaded once the first
result comes in (grader/grading.py), so the command reaches the engine sooner. Which
modules are loaded is checked here; how long they take is measured in bench/ only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATER = ("grader.outputs", "jinja2", "pandas", "grader.reports.feedback")


def test_the_grade_command_loads_no_outputs_before_it_runs() -> None:
    code = (
        "import json, sys; import grader.cli; "
        f"print(json.dumps([m for m in {list(LATER)!r} if m in sys.modules]))"
    )
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == []
