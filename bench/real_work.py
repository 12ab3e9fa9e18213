"""Real work: the sample course's hw1 graded for many students, against bare pytest.

Copies one sample student's hw1 repository to N students, grades them with the built-in
engine (sandboxed), and runs the same instructor tests directly with pytest on each
checkout: sequentially and two at a time. Prints the ratios from one run.

    python bench/real_work.py              # 100 students
    python bench/real_work.py --quick      # 6 students
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.grading import GradeOptions, grade  # noqa: E402

SAMPLE = ROOT / "sample_course"
PYTEST = [
    "python3",
    "-B",
    "-P",
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    ".sphere-engine/tests",
]


def make_class(tmp: Path, n: int) -> Path:
    course = tmp / "course"
    shutil.copytree(SAMPLE, course, ignore=shutil.ignore_patterns(".grader", "out"))
    bundle = course / "repos" / "hw1" / "amartin.bundle"
    rows = ["student_id,name"]
    for index in range(n):
        sid = f"s{index:03d}"
        rows.append(f"{sid},Student {index}")
        shutil.copy(bundle, course / "repos" / "hw1" / f"{sid}.bundle")
    (course / "roster.csv").write_text("\n".join(rows) + "\n")
    return course


def checkout(course: Path, tmp: Path, n: int) -> list[Path]:
    dirs = []
    for index in range(n):
        work = tmp / "bare" / f"s{index:03d}"
        subprocess.run(
            [
                "git",
                "clone",
                "-q",
                str(course / "repos" / "hw1" / f"s{index:03d}.bundle"),
                str(work),
            ],
            check=True,
        )
        shutil.copytree(course / "projects" / "hw1", work, dirs_exist_ok=True)
        dirs.append(work)
    return dirs


def bare_pytest(work: Path) -> None:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    subprocess.run(PYTEST, cwd=work, env=env, capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 6 if args.quick else args.students
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        course = make_class(tmp, n)
        started = time.monotonic()
        result = grade(GradeOptions(course, assignments=("hw1",)))
        ours = time.monotonic() - started
        dirs = checkout(course, tmp, n)
        started = time.monotonic()
        for work in dirs:
            bare_pytest(work)
        sequential = time.monotonic() - started
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(bare_pytest, dirs))
        parallel = time.monotonic() - started
    graded = sum(1 for o in result.summary.outcomes if o.status == "graded")
    print(f"real work: sample hw1 for N={n} students (built-in engine, sandboxed)")
    print(f"  graded: {graded}/{n}")
    print(f"  grader (fetch+package+sandbox+report): {ours:7.1f} s")
    print(
        f"  bare pytest, sequential:               {sequential:7.1f} s"
        f"  -> ratio {sequential / ours:.2f}"
    )
    print(
        f"  bare pytest, 2 at a time:              {parallel:7.1f} s"
        f"  -> ratio {parallel / ours:.2f}"
    )


if __name__ == "__main__":
    main()
