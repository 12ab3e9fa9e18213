"""Real work: the sample course's hw1 graded for N students, against bare pytest.

Each student gets a repository cloned from amartin's (all pass, 100 points) or bchen's
(65 points) hw1 bundle, alternately, plus one commit of their own before the deadline
(a file naming them), so every archive differs. We grade them with `grader grade`'s
defaults (the in-process engine, one slot per core, each stage sandboxed, the student's
code behind grader_harness), then run bare pytest over the instructor tests directly on
a checkout of each student's commit with the project files copied in, the student's
module imported into pytest's own process as most course suites do
(``bench.harness.IN_PROCESS_RUN``): one after another, and two at a time. All from one
run; the scores and pytest exit codes are checked.

    python bench/real_work.py              # 100 students
    python bench/real_work.py --quick      # 4 students
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    IN_PROCESS_RUN,
    SAMPLE,
    Timeline,
    git,
    graded_count,
    in_process_hw1,
    machine,
    measured,
)
from grader.grading import GradeOptions, grade

ORIGINALS = {"amartin": 100.0, "bchen": 65.0}  # hw1 score of each original (README)
PYTEST_EXIT = {"amartin": 0, "bchen": 1}  # all pass; some fail
COMMIT_DATE = "2026-09-18T20:00:00-04:00"  # before the deadline, after both originals


def original_of(index: int) -> str:
    return list(ORIGINALS)[index % len(ORIGINALS)]


def make_class(tmp: Path, n: int) -> tuple[Path, list[Path]]:
    """The sample course with N hw1 students; also each student's checkout for bare runs."""
    course = tmp / "course"
    shutil.copytree(SAMPLE, course, ignore=shutil.ignore_patterns(".grader", "out", "hw2"))
    bundles = course / "repos" / "hw1"
    originals = {name: bundles / f"{name}.bundle" for name in ORIGINALS}
    for path in bundles.glob("*.bundle"):
        path.rename(tmp / path.name)
    rows = ["student_id,name"]
    checkouts = []
    for index in range(n):
        sid = f"s{index:03d}"
        rows.append(f"{sid},Student {index}")
        work = tmp / "checkouts" / sid
        git("clone", "-q", str(tmp / originals[original_of(index)].name), str(work))
        (work / "STUDENT").write_text(f"{sid}\n")
        git("add", "STUDENT", cwd=work)
        git("commit", "-q", "-m", sid, cwd=work, date=COMMIT_DATE)
        git("bundle", "create", "-q", str(bundles / f"{sid}.bundle"), "HEAD", "--branches",
            cwd=work)  # fmt: skip
        shutil.rmtree(work / ".git")
        shutil.copytree(course / "projects" / "hw1", work, dirs_exist_ok=True)
        in_process_hw1(work)  # bare pytest: the student's module in pytest's own process
        checkouts.append(work)
    (course / "roster.csv").write_text("\n".join(rows) + "\n")
    # hw1 only, and no extensions: they name sample students who are not on this roster
    hw1 = (course / "course.toml").read_text().split("[assignments.hw2]")[0]
    hw1 = re.sub(r"\[assignments\.hw1\.extensions\][^\[]*", "", hw1)
    (course / "course.toml").write_text(hw1)
    return course, checkouts


def bare_pytest(work: Path) -> int:
    """The project's run command, unconfined, in the student's checkout."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(work),
        "SE_PATH_UNIT_TESTS_REPORT": str(work / "report.xml"),
    }
    done = subprocess.run(
        ["/bin/sh", "-c", IN_PROCESS_RUN], cwd=work, env=env, capture_output=True, check=False
    )
    return done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 4 if args.quick else args.students
    print(f"real work: sample hw1 for N={n} students (amartin/bchen copies); {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp_name:
        course, checkouts = make_class(Path(tmp_name), n)
        timeline = Timeline()
        with measured() as ours:
            report = grade(GradeOptions(course, assignments=("hw1",)), progress=timeline)
        ended = time.monotonic()
        with measured() as sequential:
            codes = [bare_pytest(work) for work in checkouts]
        with measured() as parallel, ThreadPoolExecutor(2) as pool:
            codes_2 = list(pool.map(bare_pytest, checkouts))
    expected_codes = [PYTEST_EXIT[original_of(i)] for i in range(n)]
    scores = [o.grade.score if o.grade else None for o in report.summary.outcomes]
    expected_scores = [ORIGINALS[original_of(i)] for i in range(n)]
    created = report.summary.submissions_created
    correct = codes == codes_2 == expected_codes and scores == expected_scores and created == n
    g, s, p = ours[0].wall, sequential[0].wall, parallel[0].wall
    print(
        f"  graded: {graded_count(report)}/{n} ({created} submissions), scores and pytest"
        f" exit codes as expected: {correct}"
    )
    print(f"  grader (fetch, package, sandboxed run, outputs): {g:7.1f} s")
    print(f"    ({timeline.phases(ended)})")
    print(f"  bare pytest, one after another: {s:7.1f} s  -> grader takes {g / s:.2f}x")
    print(f"  bare pytest, 2 at a time:       {p:7.1f} s  -> grader takes {g / p:.2f}x")
    print(f"  per student: grader {g / n * 1000:.0f} ms, bare pytest {s / n * 1000:.0f} ms")
    if not correct:  # name what differed, so a red CI run says why
        for i, outcome in enumerate(report.summary.outcomes):
            print(
                f"  {outcome.student.id}: score {scores[i]} (expected {expected_scores[i]}),"
                f" engine {outcome.engine_status}, attempts {outcome.attempts},"
                f" pytest {codes[i]}/{codes_2[i]} (expected {expected_codes[i]})"
                f" {outcome.reason} {outcome.debug_log[-300:]!r}"
            )
    return 0 if correct else 1


if __name__ == "__main__":
    raise SystemExit(main())
