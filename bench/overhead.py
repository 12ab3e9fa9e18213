"""Grader overhead: many students with trivial stages, engine served on loopback.

Prints the grader process's own CPU milliseconds per student (the engine runs in its own
process, so its work is not counted), peak memory and total wall time, from one run.

    python bench/overhead.py              # 1000 students
    python bench/overhead.py --quick      # 20 students
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import cpu_seconds, make_course, served_engine
from grader.grading import GradeOptions, grade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20 if args.quick else args.students
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(Path(tmp), n, run_command="true", slots=args.slots)
        with served_engine(course / "projects", Path(tmp) / "engine", slots=args.slots) as engine:
            os.environ["SPHERE_ENGINE_TOKEN"] = engine.token
            cpu, wall = cpu_seconds(), time.monotonic()
            result = grade(GradeOptions(course, engine_url=engine.url, concurrency=args.slots))
            cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    graded = sum(1 for o in result.summary.outcomes if o.status == "graded")
    print(f"overhead: N={n} students, trivial stages, engine on loopback with {args.slots} slots")
    print(f"  graded: {graded}/{n}")
    print(f"  grader CPU per student: {cpu / n * 1000:8.1f} ms")
    print(f"  grader peak memory:     {peak_mb:8.1f} MB")
    print(f"  wall time:              {wall:8.1f} s  ({n / wall:.1f} students/s)")


if __name__ == "__main__":
    main()
