"""`grader similarity` over a class: how long N students' workspaces take to compare.

Writes a course of N students, each a one-commit git repository holding a starter
file and eight functions of their own (statements drawn at random, so no two students
write the same code; now and then a function from a small shared pool, as students who
converge on one solution do), plants copies (another student's code with every name
changed and the functions shuffled) and byte-identical twins, and stores a graded
outcome for each in the course's state as `grader grade` would (no engine run: the
grades are not what is measured). Then runs `grader similarity`'s core twice: the
first run creates the git mirrors (`grader grade` would have), the second is the one
an instructor waits for. Prints the time of each phase and whether every planted pair
came out at the top, above the threshold; exits 1 if one did not.

    python bench/similarity.py             # 500 students
    python bench/similarity.py --quick     # 40 students
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import machine, make_git_repo
from grader.codec import to_json
from grader.comparing import similarity
from grader.config import load_course
from grader.records import Outcome, StudentOutcome
from grader.roster import load_roster
from grader.state import open_state
from tests.support.repos import git

FUNCTIONS = 8
POOL = 30  # shared variants of each function
POOLED = 0.25  # chance a student's function is one of the pool's
NAMES = [f"{a}{b}" for a in ("total", "item", "value", "count", "acc", "row") for b in "xyzkq"]
STARTER = '''"""Provided: reading the input. Do not change."""


def read_rows(path):
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [field.strip() for field in line.split(",")]
            if len(fields) != 3:
                raise ValueError(f"line {number}: expected 3 fields, got {len(fields)}")
            rows.append((fields[0], int(fields[1]), float(fields[2])))
    return rows
'''


class Progress:
    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []
        self.began = time.monotonic()

    def start(self, what: str, total: int) -> None:
        now = time.monotonic()
        self.phases.append((f"{what} ({total})", now))

    def advance(self) -> None:
        pass

    def report(self, end: float) -> str:
        marks = [*self.phases, ("", end)]
        return "; ".join(
            f"{what} {marks[i + 1][1] - at:.1f}s" for i, (what, at) in enumerate(marks[:-1])
        )


def statement(rng: random.Random, names: list[str], depth: int) -> list[str]:
    a, b = rng.sample(names, 2)
    kind = rng.randrange(5 if depth < 2 else 3)
    op = rng.choice("+-*%")
    if kind == 0:
        return [f"{a} = {b} {op} {rng.randrange(100)}"]
    if kind == 1:
        return [f"{a}.append({b} {op} {rng.randrange(100)})"]
    if kind == 2:
        return [f"{a} = max({a}, {b} // {rng.randrange(1, 50)})"]
    head = (
        f"for {a} in range({rng.randrange(2, 60)}):"
        if kind == 3
        else (f"if {a} > {rng.randrange(100)}:")
    )
    body = [line for _ in range(rng.randrange(1, 4)) for line in statement(rng, names, depth + 1)]
    return [head, *(f"    {line}" for line in body)]


def function(rng: random.Random, name: str) -> list[str]:
    names = rng.sample(NAMES, 5)
    lines = [f"{n} = {rng.randrange(10)}" for n in names[:3]]
    while len(lines) < 12:
        lines += statement(rng, names, 0)
    return [
        f"def {name}({names[3]}, {names[4]}):",
        *(f"    {x}" for x in lines),
        f"    return {names[0]}",
        "",
    ]


def renamed(lines: list[str], rng: random.Random) -> list[str]:
    """The same code with every variable name changed (what normalizing sees through)."""
    mapping = {n: f"{n}_{rng.randrange(1000)}" for n in NAMES}
    out = []
    for line in lines:
        for old in sorted(mapping, key=len, reverse=True):
            line = line.replace(old, mapping[old])
        out.append(line)
    return out


def solutions(
    n: int, copies: int, twins: int, seed: int = 7
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    rng = random.Random(seed)
    pool = [
        [function(random.Random(f"{f}-{v}"), f"task_{f}") for v in range(POOL)]
        for f in range(FUNCTIONS)
    ]
    ids = [f"s{i:04d}" for i in range(n)]
    code: dict[str, list[list[str]]] = {}
    for sid in ids:
        funcs = []
        for f in range(FUNCTIONS):
            base = rng.choice(pool[f]) if rng.random() < POOLED else function(rng, f"task_{f}")
            funcs.append(renamed(base, rng))
        code[sid] = funcs
    planted: list[tuple[str, str]] = []
    chosen = rng.sample(ids, 2 * (copies + twins))
    for i in range(copies):
        original, copier = chosen[2 * i], chosen[2 * i + 1]
        funcs = [renamed(f, rng) for f in code[original]]
        rng.shuffle(funcs)
        code[copier] = funcs
        planted.append((min(original, copier), max(original, copier)))
    texts = {
        sid: STARTER + "\n\n" + "\n".join("\n".join(f) for f in funcs)
        for sid, funcs in code.items()
    }
    for i in range(copies, copies + twins):
        original, twin = chosen[2 * i], chosen[2 * i + 1]
        texts[twin] = texts[original]
        planted.append((min(original, twin), max(original, twin)))
    return texts, planted


def write_course(root: Path, texts: dict[str, str]) -> Path:
    course = root / "course"
    (course / "projects" / "bench").mkdir(parents=True)
    (course / "projects" / "bench" / "config.json").write_text('{"version": 2.1}\n')
    (course / "starter").mkdir()
    (course / "starter" / "solution.py").write_text(STARTER)
    (course / "course.toml").write_text(
        '[course]\nname = "Bench"\n\n[assignments.bench]\ndeadline = 2030-01-01T00:00:00Z\n'
        'repo = "work/{student_id}"\nmax_points = 100\nstarter = "starter"\n'
    )
    (course / "roster.csv").write_text(
        "student_id,name\n" + "".join(f"{sid},Student {sid}\n" for sid in texts)
    )
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda sid: make_git_repo(course / "work" / sid, {"solution.py": texts[sid]}), texts
            )
        )
    return course


def store_grades(course_dir: Path, texts: dict[str, str]) -> None:
    """A graded outcome per student, as `grader grade` stores it (commit and archive digest)."""
    course = load_course(course_dir)
    assignment = course.assignment("bench")
    with open_state(course.state_dir) as state:
        run_id = state.start_run(engine="bench", assignments=("bench",))
        for student in load_roster(course.roster):
            sha = git(course_dir / "work" / student.student_id, "rev-parse", "HEAD")
            digest = hashlib.sha256(texts[student.student_id].encode()).hexdigest()
            outcome = replace(
                StudentOutcome.blank(student, assignment),
                status="graded",
                outcome=Outcome.OK,
                commit=sha,
                archive_sha256=digest,
            )
            state.record_grade(
                run_id,
                "bench",
                student.student_id,
                status="graded",
                score=None,
                outcome_json=to_json(outcome),
            )
        state.finish_run(run_id, status="complete", summary="bench")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 40 if args.quick else args.students
    copies, twins = (3, 1) if args.quick else (10, 3)
    print(f"similarity: N={n} students (git repositories); {machine()}")
    print(f"  planted: {copies} disguised copies, {twins} byte-identical twins")
    texts, planted = solutions(n, copies, twins)
    lines = sum(t.count("\n") for t in texts.values()) // n
    print(f"  {lines} lines per workspace on average ({STARTER.count(chr(10))} of them starter)")
    with tempfile.TemporaryDirectory(prefix="bench-similarity-") as tmp:
        began = time.monotonic()
        course = write_course(Path(tmp), texts)
        store_grades(course, texts)
        print(f"  course written and grades stored in {time.monotonic() - began:.1f}s")
        for label in ("first run (creates the git mirrors)", "second run (mirrors in place)"):
            progress = Progress()
            began = time.monotonic()
            result = similarity(course, "bench", steps=progress)
            wall = time.monotonic() - began
            print(
                f"  {label}: {wall:.1f}s wall for {n} students: {progress.report(time.monotonic())}"
            )
    top = {(p.left, p.right) for p in result.above}
    found = sum(1 for pair in planted if pair in top)
    identical_first = all(p.identical for p in result.pairs[:twins])
    above = len(result.above)
    print(f"  pairs listed: {len(result.pairs)}; at or above {result.threshold:.0%}: {above}")
    print(f"  planted pairs found above the threshold: {found}/{len(planted)}")
    print(f"  identical pairs listed first: {identical_first}")
    unplanted = len(top - set(planted))
    print(f"  other pairs above the threshold: {unplanted}")
    return 0 if found == len(planted) and identical_first else 1


if __name__ == "__main__":
    sys.exit(main())
