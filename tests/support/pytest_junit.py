"""A real pytest JUnit report, shared by the tests of every reader of that XML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUITE = """
import pytest

def test_ok():
    print("hello out")

def test_fail():
    assert 1 + 1 == 3, "math is broken"

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

def test_error(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

class TestGroup:
    def test_in_class(self):
        pass
"""
"""One test of each status: ok, failure, error, skipped, and one inside a class."""


def pytest_junit(tmp_path: Path, family: str) -> bytes:
    """SUITE's report from a real pytest, in one of its two XML families.

    xunit1 also carries captured output (``junit_logging=all``), as projects often ask.
    """
    (tmp_path / "test_demo.py").write_text(SUITE)
    report = tmp_path / f"{family}.xml"
    args = ["-q", "-p", "no:cacheprovider", "-o", f"junit_family={family}"]
    if family == "xunit1":
        args += ["-o", "junit_logging=all"]
    subprocess.run(
        [sys.executable, "-B", "-m", "pytest", *args, "test_demo.py", f"--junitxml={report}"],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        check=False,  # the suite fails on purpose
    )
    return report.read_bytes()
