"""The instructor's pages as a real browser reads them: headless Chromium's DOM.

Chromium parses the course page and a dashboard written from outcomes whose student
text is hostile; the tables it builds must have one row per student with every cell in
place, and no element the page did not write (a student's ``<script>`` stays text).
.ci/run installs Debian's chromium; without it these tests are skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader.comparing import QuietSteps
from grader.records import StudentOutcome
from grader.reports.course_page import write_course_page
from grader.reports.dashboard import write_dashboard
from grader.reports.similarity import similarity_page, write_similarity_page
from grader.roster import Student
from grader.similarity import Workspace, compare_all, fingerprinted
from grader.winnowing import code_files, fingerprints

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = '</td></tr></table><script>document.title="pwned"</script><img src=x onerror=1>'
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


class _Dom(HTMLParser):
    """Rows of the table with ``id``, each a list of cell texts, and every tag seen."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth = table_id, 0
        self.rows: list[list[str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.depth = self.depth + 1 if self.depth or ("id", self.table_id) in attrs else 0
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def chromium_dom(page: Path, tmp_path: Path, table_id: str) -> _Dom:
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dom = _Dom(table_id)
    dom.feed(done.stdout)
    return dom


def the_class(make: MakeOutcome, assignment: str) -> list[StudentOutcome]:
    hostile = Student("mallory", name=HOSTILE, section=HOSTILE)
    return [
        make("amartin", assignment, outcome="ok"),
        make("mallory", assignment, student=hostile),
        make("hpatel", assignment, status="not graded", outcome="repository unavailable"),
    ]


def test_chromium_reads_one_row_per_student_on_the_course_page(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcomes = {a: the_class(make_outcome, a) for a in ("hw1", "hw2")}
    page = write_course_page(HOSTILE, outcomes, tmp_path / "out")
    dom = chromium_dom(page, tmp_path, "students")
    header, *rows = dom.rows
    assert header[:5] == ["student", "name", "section", "hw1", "hw2"]
    assert [r[0] for r in rows] == ["amartin", "mallory", "hpatel"]
    assert all(len(r) == len(header) for r in rows)
    assert rows[1][1] == HOSTILE  # the student's text, as text
    assert rows[2][4] == "- (repository unavailable)"
    assert "script" not in dom.tags and "img" not in dom.tags


def test_chromium_reads_the_dashboards_student_table(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcomes = the_class(make_outcome, "hw1")
    page = write_dashboard(outcomes, outcomes[0].assignment, tmp_path / "hw1")
    dom = chromium_dom(page, tmp_path, "students")
    header, *rows = dom.rows
    assert header[0] == "student" and [r[0] for r in rows] == ["amartin", "mallory", "hpatel"]
    assert all(len(r) == len(header) for r in rows)
    assert "script" not in dom.tags and "img" not in dom.tags


def test_chromium_reads_the_similarity_pairs_and_regions(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    assignment = make_outcome().assignment
    code = "def add(a, b):\n    total = a + b\n    return total\n" * 3
    hostile_code = f"# {HOSTILE}\n" + code.replace("total", "grand_total")
    workspaces = [
        _workspace("amartin", code),
        _workspace(HOSTILE, hostile_code),
        _workspace("hpatel", "import math\n\nprint(math.pi * 2 ** 10)\n"),
    ]
    scores = compare_all(workspaces)
    page = similarity_page(assignment, workspaces, scores, [("nobody", HOSTILE)], QuietSteps())
    path = write_similarity_page(page, tmp_path / "hw1" / "similarity.html")
    dom = chromium_dom(path, tmp_path, "pairs")
    header, *rows = dom.rows
    assert header[:4] == ["#", "student", "student", "similarity"]
    assert [r[1:3] for r in rows] == [["amartin", HOSTILE]]
    assert all(len(r) == len(header) for r in rows)
    assert "script" not in dom.tags and "img" not in dom.tags
    assert dom.tags.count("mark") >= 4  # the matched lines, highlighted on both sides
    skipped = chromium_dom(path, tmp_path, "skipped")
    assert [cell.strip() for cell in skipped.rows[1]] == ["nobody", HOSTILE]


def _workspace(student: str, text: str) -> Workspace:
    code = code_files([("solution.py", text.encode())])
    return fingerprinted(student, code, [fingerprints(c.normalized) for c in code], frozenset())
