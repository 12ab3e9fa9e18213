"""Grader overhead: many students with trivial stages, engine served on loopback.

The engine runs in its own process (`grader engine serve`), so its work is not counted:
the figures are the grader's own. From one run: CPU milliseconds per student (this
process, every thread) and of the git processes it ran, peak memory (RSS) against the
memory before the run, total wall time and its phases.

    python bench/overhead.py                  # 1000 students, each a git repository
    python bench/overhead.py --sources folder # plain folders instead of git repositories
    python bench/overhead.py --quick          # 20 students
"""

from __future__ import annotations

import argparse
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
    measured,
    peak_rss_mb,
    served_engine,
)
from grader.grading import GradeOptions, grade
from grader.reports.gradebook import load_pandas


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--sources", choices=("git", "folder"), default="git")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20 if args.quick else args.students
    print(
        f"overhead: N={n} students ({args.sources} sources), stage `true`, engine served "
        f"on loopback with {args.slots} slots; {machine()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        course = make_course(
            Path(tmp), n, run_command="true", slots=args.slots, git_repos=args.sources == "git"
        )
        with (
            served_engine(course / "projects", Path(tmp) / "engine", slots=args.slots) as engine,
            engine_token(engine.token),
        ):
            load_pandas()  # imported on first use, by every run: not the run's own growth
            rss_before = peak_rss_mb()
            engine_cpu = engine.cpu_seconds()
            timeline = Timeline()
            with measured() as usage:
                options = GradeOptions(course, engine_url=engine.url, concurrency=args.slots)
                report = grade(options, progress=timeline)
            ended = time.monotonic()
            engine_cpu = engine.cpu_seconds() - engine_cpu
    used = usage[0]
    graded = graded_count(report)
    print(f"  graded:                  {graded}/{n}")
    print(f"  grader CPU per student:  {used.cpu / n * 1000:8.1f} ms (this process)")
    print(f"  git CPU per student:     {used.children_cpu / n * 1000:8.1f} ms (child processes)")
    print(f"  engine CPU per student:  {engine_cpu / n * 1000:8.1f} ms (served; for scale)")
    print(
        f"  peak memory (RSS):       {peak_rss_mb():8.1f} MB ({rss_before:.1f} MB before the run)"
    )
    print(f"  wall time:               {used.wall:8.1f} s  ({n / used.wall:.1f} students/s)")
    print(f"    ({timeline.phases(ended)})")
    return 0 if graded == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
