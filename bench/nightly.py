"""Nightly rerun: a second run over unchanged students creates no submissions.

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

from bench.harness import make_course
from grader.grading import GradeOptions, grade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 20 if args.quick else args.students
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(Path(tmp), n, run_command="true", slots=8)
        started = time.monotonic()
        first = grade(GradeOptions(course))
        first_wall = time.monotonic() - started
        started = time.monotonic()
        second = grade(GradeOptions(course))
        second_wall = time.monotonic() - started
    print(f"nightly: N={n} students, built-in engine")
    print(f"  first run:  {first_wall:8.1f} s, {first.summary.submissions_created} submissions")
    print(
        f"  second run: {second_wall:8.1f} s, {second.summary.submissions_created} submissions"
        f" ({second.summary.reused} reused)  -> {first_wall / second_wall:.1f}x faster"
    )


if __name__ == "__main__":
    main()
