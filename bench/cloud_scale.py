"""A course past one machine: the grader against a cloud-like engine, and what 2000 need.

The cloud service is the engine that grows: capacity is counted in slots (one batch
machine = 4 slots, ``/stats``), clients poll in batches of at most 20 ids "every few
seconds", and its rate limits are undocumented, so the grader keeps to its polite
default of 10 requests a second for any engine that is not on this machine. This script
serves the local engine (`grader engine serve --slots K`) on this machine's own network
address, not loopback, so `grader grade --engine URL` treats it exactly as the cloud
(10 requests/s, polls every 2-5 s), and grades N passing students whose run stage
sleeps S seconds (then writes a JUnit report; the test stage is `se_utils_cli
evaluate`). For each K it prints the time, the requests and their rate, and the two
bounds on any run: the slots' (ceil(N/K) * S) and the request budget's (requests / 10 per
second). Then the same model for a 2000-student course at typical stage times, per
slot count and request rate: what the instructor should buy (slots) and set
(`[engine] requests_per_second`, when the account allows more).

    python bench/cloud_scale.py              # N=300, S=1 s, K=4 and 16
    python bench/cloud_scale.py --quick      # N=8, S=0.2 s, K=4

Without a network address other than loopback (a bare container), the engine is served
on loopback and the course sets the cloud's client settings itself
(`requests_per_second = 10`, `poll_interval = 3`).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    Timeline,
    engine_token,
    graded_count,
    machine,
    make_course,
    passing_run,
    served_engine,
)
from grader.config import DEFAULT_REQUESTS_PER_SECOND
from grader.grading import GradeOptions, grade

COURSE = 2000
STAGE_SECONDS = (5.0, 30.0, 120.0)  # a small test suite, a typical one, a heavy one
SLOTS = (4, 16, 64)  # one batch machine, four, sixteen
RATES = (DEFAULT_REQUESTS_PER_SECOND, 50.0)


def own_address() -> str | None:
    """This machine's first network address that is not loopback (``None``: none)."""
    try:
        done = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    addresses = [a for a in done.stdout.split() if "." in a and not a.startswith("127.")]
    return addresses[0] if addresses else None


def one_run(n: int, k: int, sleep: float, host: str | None) -> tuple[float, int, int, Timeline]:
    """Grade N passing students against a K-slot engine; wall seconds, graded, requests."""
    with tempfile.TemporaryDirectory(prefix="bench-cloud-") as tmp:
        course = make_course(
            Path(tmp), n, run_command=passing_run(sleep), test_command="se_utils_cli evaluate",
            slots=k,
        )  # fmt: skip
        if host is None:  # loopback: the cloud's client settings, said outright
            toml = course / "course.toml"
            text = toml.read_text().replace(
                "[engine]\n",
                f"[engine]\nrequests_per_second = {DEFAULT_REQUESTS_PER_SECOND:g}\n"
                "poll_interval = 3\n",
            )
            toml.write_text(text)
        with (
            served_engine(
                course / "projects", Path(tmp) / "engine", slots=k, host=host or "127.0.0.1"
            ) as engine,
            engine_token(engine.token),
        ):
            before = engine.requests()
            timeline = Timeline()
            options = GradeOptions(course, engine_url=engine.url, concurrency=k)
            report = grade(options, progress=timeline)
            wall = time.monotonic() - timeline.began
            asked = sum((engine.requests() - before).values())
            return wall, graded_count(report), asked, timeline


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--sleep", type=float, default=1.0, help="run stage seconds")
    parser.add_argument("--slots", default="4,16", help="slot counts, comma separated")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.students, args.sleep, args.slots = 8, 0.2, "4"
    n, s = args.students, args.sleep
    host = own_address()
    rate = DEFAULT_REQUESTS_PER_SECOND
    where = f"on {host} (not loopback)" if host else "on loopback with the cloud's settings"
    print(f"cloud scale: N={n}, run stage {s:g} s, engine {where}; {machine()}")
    per_submission = []
    for k in (int(value) for value in args.slots.split(",")):
        wall, graded, asked, timeline = one_run(n, k, s, host)
        slots_bound = math.ceil(n / k) * s
        budget_bound = asked / rate
        per = asked / max(graded, 1)
        per_submission.append(per)
        print(f"  K={k} slots: {wall:.1f} s for {graded}/{n} graded; {asked} requests "
              f"({per:.2f} per submission, {asked / wall:.1f}/s)")  # fmt: skip
        bound = max(slots_bound, budget_bound)
        print(f"    bounds: slots {slots_bound:.1f} s, request budget at {rate:g}/s "
              f"{budget_bound:.1f} s -> {wall / bound:.2f}x the larger")  # fmt: skip
        print(f"    ({timeline.phases(time.monotonic())})")
        if graded != n:
            return 1
    per = max(per_submission)
    print(f"a {COURSE}-student course at {per:.2f} requests per submission "
          f"({COURSE * per:.0f} requests): minutes to grade = max(slots, requests)")  # fmt: skip
    for seconds in STAGE_SECONDS:
        print(f"  stage {seconds:g} s{'':<6}" + "".join(f"{f'K={k}':>8}" for k in SLOTS))
        for r in RATES:
            cells = "".join(
                f"{max(math.ceil(COURSE / k) * seconds, COURSE * per / r) / 60:>8.1f}"
                for k in SLOTS
            )
            print(f"    at {r:g} req/s{'':<3}{cells}")
    print("  (req/s: the client's rate, [engine] requests_per_second; K: the account's slots)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
