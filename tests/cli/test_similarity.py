"""`grader similarity` on a tiny real course: real git repositories, graded for real first."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from grader.cli import main
from tests.support.repos import ON_TIME, commit

STARTER = '''"""Homework: add, mul and a report of the numbers you were given."""


def read_numbers(path):
    """Every number in the file at path, one per line (provided: do not change)."""
    numbers = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                numbers.append(float(line))
    return numbers


def add(a, b):
    raise NotImplementedError


def mul(a, b):
    raise NotImplementedError
'''

TODO = STARTER[STARTER.index("def add") :]  # what the starter leaves to students

ADA = STARTER.replace(
    TODO,
    '''def add(a, b):
    return a + b


def mul(a, b):
    return a * b


def summary(values):
    """Smallest, largest and mean of values, and how many are above the mean."""
    smallest = values[0]
    largest = values[0]
    total = 0
    for value in values:
        if value < smallest:
            smallest = value
        if value > largest:
            largest = value
        total = total + value
    mean = total / len(values)
    above = [value for value in values if value > mean]
    return {"min": smallest, "max": largest, "mean": mean, "above": len(above)}


def histogram(values, width):
    """A text bar per value, scaled so the largest is width characters long."""
    largest = max(values)
    lines = []
    for index, value in enumerate(values):
        stars = int(round(width * value / largest))
        lines.append(f"{index:3d} {'*' * stars}")
    return "\\n".join(lines)
''',
)

# ada's work with every name changed, comments added and the functions in another order
BOB = STARTER.replace(
    TODO,
    '''def bars(numbers, size):
    # one bar per number
    top = max(numbers)
    out = []
    for i, n in enumerate(numbers):
        count = int(round(size * n / top))
        out.append(f"{i:3d} {'*' * count}")
    return "\\n".join(out)


def mul(x, y):
    return x * y


def stats(numbers):
    """Statistics."""
    lo = numbers[0]
    hi = numbers[0]
    acc = 0
    for n in numbers:
        if n < lo:
            lo = n
        if n > hi:
            hi = n
        acc = acc + n
    avg = acc / len(numbers)
    big = [n for n in numbers if n > avg]
    return {"min": lo, "max": hi, "mean": avg, "above": len(big)}


def add(x, y):
    return x + y
''',
)

# the same task solved another way, on the same starter
CY = STARTER.replace(
    TODO,
    """import statistics


def add(a, b):
    return sum((a, b))


def mul(a, b):
    product = 1
    for factor in (a, b):
        product *= factor
    return product


def summary(values):
    mean = statistics.fmean(values)
    return dict(min=min(values), max=max(values), mean=mean,
                above=sum(1 for v in values if v > mean))


def histogram(values, width):
    scale = width / max(values)
    return "\\n".join("%3d %s" % (i, "*" * round(v * scale)) for i, v in enumerate(values))
""",
)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


def similarity_course(course: Path, *, starter: bool = True) -> Path:
    """tiny_course with a starter and four students: dan handed in ada's exact files."""
    (course / "starter").mkdir()
    (course / "starter" / "solution.py").write_text(STARTER)
    if starter:
        toml = course / "course.toml"
        toml.write_text(
            toml.read_text().replace("max_points = 10\n", 'max_points = 10\nstarter = "starter"\n')
        )
    with (course / "roster.csv").open("a") as roster:
        roster.write("dan,Dan P,dan@example.edu\n")
    for student, code in (("ada", ADA), ("bob", BOB), ("cy", CY), ("dan", ADA)):
        commit(course / "repos" / student, {"solution.py": code}, "solve", ON_TIME)
    return course


def pairs(course: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (course / "out" / "add" / "similarity.csv").open(encoding="utf-8") as fp:
        return {(r["student_a"], r["student_b"]): r for r in csv.DictReader(fp)}


def test_similarity_ranks_identical_then_copied_and_leaves_the_starter_out(
    tiny_course: Path,
) -> None:
    course = similarity_course(tiny_course)
    assert run("grade", str(course)).exit_code == 0
    done = run("similarity", str(course), "-a", "add")
    assert done.exit_code == 0, done.output
    assert "4 workspaces compared" in done.output
    # progress as plain lines when the output is not a terminal: each step and its end
    assert "reading workspaces: 4\n" in done.output and "reading workspaces: 4/4" in done.output
    found = pairs(course)
    rows = list(found)
    assert rows[0] == ("ada", "dan") and found[rows[0]]["identical"] == "true"
    # renamed variables, comments and reordered functions: still caught
    assert float(found[("ada", "bob")]["similarity"]) >= 0.7
    assert float(found[("bob", "dan")]["similarity"]) >= 0.7
    # cy shares only the starter code (left out) and the task: low or not listed at all
    for key in (("ada", "cy"), ("bob", "cy"), ("cy", "dan")):
        assert key not in found or float(found[key]["similarity"]) < 0.15
    page = (course / "out" / "add" / "similarity.html").read_text(encoding="utf-8")
    assert "<mark>" in page and "the starter code (starter)" in page
    assert "read_numbers" not in page.split("Matching regions")[1]  # starter code never matched
    dashboard = (course / "out" / "add" / "dashboard.html").read_text(encoding="utf-8")
    assert "Similar workspaces (3)" in dashboard
    assert 'href="similarity.html"' in dashboard
    # `grader report` keeps the pairs on the dashboard
    assert run("report", str(course)).exit_code == 0
    assert "Similar workspaces (3)" in (course / "out" / "add" / "dashboard.html").read_text()


def test_without_the_starter_its_code_makes_everyone_alike(tiny_course: Path) -> None:
    course = similarity_course(tiny_course, starter=False)
    run("grade", str(course))
    assert run("similarity", str(course), "-a", "add").exit_code == 0
    found = pairs(course)
    assert float(found[("ada", "cy")]["similarity"]) > 0.2  # the shared read_numbers counts
    page = (course / "out" / "add" / "similarity.html").read_text(encoding="utf-8")
    assert "no starter code: set starter under [assignments.add]" in page


def test_a_threshold_in_course_toml_decides_what_reaches_the_dashboard(
    tiny_course: Path,
) -> None:
    course = similarity_course(tiny_course)
    toml = course / "course.toml"
    toml.write_text(
        toml.read_text().replace(
            "max_points = 10\n", "max_points = 10\nsimilarity_threshold = 0.99\n"
        )
    )
    run("grade", str(course))
    done = run("similarity", str(course), "-a", "add")
    assert "1 at or above 99%" in done.output
    dashboard = (course / "out" / "add" / "dashboard.html").read_text(encoding="utf-8")
    assert "Similar workspaces (1)" in dashboard and "byte-identical workspaces" in dashboard


def test_an_unreadable_starter_names_the_key(tiny_course: Path) -> None:
    course = similarity_course(tiny_course)
    run("grade", str(course))
    (course / "starter" / "solution.py").unlink()
    (course / "starter").rmdir()
    done = run("similarity", str(course), "-a", "add")
    assert done.exit_code == 2
    assert "assignments.add.starter" in done.output and "starter code cannot be read" in done.output


def test_a_workspace_that_cannot_be_read_is_named_and_the_rest_compared(
    tiny_course: Path,
) -> None:
    course = similarity_course(tiny_course)
    run("grade", str(course))
    for mirror in (course / ".grader" / "mirrors").iterdir():
        if mirror.name.startswith("cy-"):
            shutil.rmtree(mirror)
    shutil.rmtree(course / "repos" / "cy")
    done = run("similarity", str(course), "-a", "add")
    assert done.exit_code == 1
    assert "NOT COMPARED add/cy" in done.output
    assert "3 workspaces compared" in done.output


def test_workspaces_are_read_from_the_mirrors_without_fetching(tiny_course: Path) -> None:
    course = similarity_course(tiny_course)
    run("grade", str(course))
    shutil.rmtree(course / "repos")  # a fetch would fail now: the mirrors hold the commits
    done = run("similarity", str(course), "-a", "add")
    assert done.exit_code == 0, done.output
    assert "4 workspaces compared" in done.output
