"""Pipeline efficiency: N students whose run stage sleeps 1 s on an engine with K slots.

Prints, from one run on this machine: our wall time against the ideal ceil(N/K) s, and
against a plain sequential loop of the quickstart's steps (tar, POST /submissions, poll
GET /submissions/:id every second, read the result) over the same served engine.

    python bench/pipeline_efficiency.py            # N=200, K=8
    python bench/pipeline_efficiency.py --quick    # N=16, K=4 (CI proves the script works)
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import make_course, served_engine
from grader.grading import GradeOptions, grade


def quickstart_loop(course: Path, url: str, token: str, students: list[str]) -> float:
    """The quickstart, student after student: create, poll every second, fetch result."""
    started = time.monotonic()
    with httpx.Client(base_url=url, params={"access_token": token}, timeout=60) as client:
        for sid in students:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                tar.add(course / "work" / sid, arcname="workspace")
            created = client.post(
                "/submissions",
                data={"project_id": "bench"},
                files={"source": ("source.tar.gz", buffer.getvalue())},
            ).json()
            while client.get(f"/submissions/{created['id']}").json()["executing"]:
                time.sleep(1.0)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, k = (16, 4) if args.quick else (args.students, args.slots)
    ideal = math.ceil(n / k) * 1.0
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(Path(tmp), n, run_command="sleep 1", slots=k)
        with served_engine(course / "projects", Path(tmp) / "engine", slots=k) as engine:
            import os

            os.environ["SPHERE_ENGINE_TOKEN"] = engine.token
            started = time.monotonic()
            result = grade(GradeOptions(course, engine_url=engine.url, concurrency=k))
            ours = time.monotonic() - started
            graded = sum(1 for o in result.summary.outcomes if o.status == "graded")
            students = [f"s{i:04d}" for i in range(n)]
            sequential = quickstart_loop(course, engine.url, engine.token, students)
    print(f"pipeline efficiency: N={n} students, K={k} slots, run stage sleeps 1 s")
    print(f"  graded: {graded}/{n}")
    print(f"  ideal ceil(N/K):       {ideal:8.1f} s")
    print(f"  grader:                {ours:8.1f} s  -> efficiency {ideal / ours:.2f} of ideal")
    print(
        f"  quickstart loop:       {sequential:8.1f} s"
        f"  -> grader is {sequential / ours:.1f}x faster"
    )


if __name__ == "__main__":
    main()
