"""Nightly rerun: a second run over unchanged students creates no submissions.

Grades N students (each a one-commit git repository, stage `true`, the built-in
in-process engine as `grader grade` uses by default), then grades them again unchanged,
as the nightly job does. Prints both runs' wall time and submissions created (the
second must create 0: exit 1 otherwise), from one run.

    python bench/nightly.py             # 500 students
    python bench/nightly.py --quick     # 20 students
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Timeline, graded_count, machine, make_course, measured
from grader.grading import GradeOptions, grade


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20 if args.quick else args.students
    print(f"nightly: N={n} students (git repositories), built-in engine; {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as tmp:
        course = make_course(Path(tmp), n, run_command="true", slots=args.slots, git_repos=True)
        with measured() as first_usage:
            first = grade(GradeOptions(course))
        timeline = Timeline()
        with measured() as second_usage:
            second = grade(GradeOptions(course), progress=timeline)
        ended = time.monotonic()
    one, two = first_usage[0], second_usage[0]
    created = second.summary.submissions_created
    print(
        f"  first run:  {one.wall:7.1f} s, {first.summary.submissions_created} submissions"
        f" created, {graded_count(first)}/{n} graded"
    )
    print(
        f"  second run: {two.wall:7.1f} s, {created} submissions created (must be 0),"
        f" {second.summary.reused} reused, {second.summary.archives_built} archives built,"
        f" {graded_count(second)}/{n} graded"
    )
    print(
        f"    {two.wall / n * 1000:.1f} ms per student; {two.wall / one.wall:.2f} of the first"
        f" run's time; grader CPU {two.cpu / n * 1000:.1f} ms + git"
        f" {two.children_cpu / n * 1000:.1f} ms per student"
    )
    print(f"    ({timeline.phases(ended)})")
    return 0 if created == 0 and graded_count(second) == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
