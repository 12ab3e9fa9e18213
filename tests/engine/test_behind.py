"""The engine's thread for work off its stages' path (``sandbox/behind.py``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader.engine.sandbox import behind

REPO = Path(__file__).resolve().parents[2]


def test_jobs_run_in_order_on_one_thread_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[tuple[int, str]] = []

    def job(n: int) -> None:
        done.append((n, threading.current_thread().name))
        if n == 1:
            raise OSError("the second job failed")

    with caplog.at_level(logging.ERROR, logger="grader.engine.sandbox.behind"):
        for n in range(5):
            behind.later(lambda n=n: job(n))
        assert behind.idle(10)
    assert [n for n, _ in done] == [0, 1, 2, 3, 4]  # the next ran after the failure
    assert {name for _, name in done} == {"behind"} != {threading.current_thread().name}
    assert "the second job failed" in caplog.text


def test_a_forked_engine_drops_its_parents_pending_jobs() -> None:
    gate = threading.Event()
    ran: list[str] = []
    behind.later(gate.wait)  # the thread is busy: what follows stays pending
    behind.later(lambda: ran.append(str(os.getpid())))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through the pipe)
        behind.later(lambda: ran.append("child"))
        ok = behind.idle(10)
        os.write(write, f"{ok} {ran}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        assert answer.read() == "True ['child']"  # its own job only
    os.waitpid(pid, 0)
    gate.set()
    assert behind.idle(10)
    assert ran == [str(os.getpid())]  # the parent's job ran in the parent only


def test_what_is_pending_when_the_engine_ends_is_done_first(tmp_path: Path) -> None:
    script = (
        "import sys, time\nfrom pathlib import Path\nsys.path.insert(0, sys.argv[1])\n"
        "from grader.engine.sandbox import behind\nt = Path(sys.argv[2])\n"
        "behind.later(lambda: time.sleep(0.3))\n"
        "behind.later(lambda: (t / 'second').write_text('done'))\n"
    )
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", script, str(REPO), str(tmp_path)], check=True)
    assert (tmp_path / "second").read_text() == "done"
    assert time.monotonic() - began < 30
