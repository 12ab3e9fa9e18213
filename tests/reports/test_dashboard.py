"""dashboard.html: counts, score distribution, per-test pass rates, not graded, late."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.records import StudentOutcome, TestOutcome
from grader.reports.dashboard import dashboard_view, score_bins, write_dashboard
from grader.roster import Student

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"  # 15 points
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def the_class(make: MakeOutcome) -> list[StudentOutcome]:
    """hw1 as the sample course grades it, in roster order."""
    return [
        make("amartin", outcome="ok"),
        make(
            "bchen",
            failing={
                "test_hidden_word_count_punctuation": "x",
                HIDDEN_FAIL: "y",
                "test_hidden_average_word_length_empty": "z",
            },
        ),
        make("cokafor", outcome="ok"),
        make("dnovak", tests=[], outcome="time limit exceeded"),
        make("erivera", failing={HIDDEN_FAIL: "ties"}),
        make("fsato", outcome="ok", lateness=timedelta(minutes=10)),  # inside the grace
        make("gmueller", outcome="ok", lateness=timedelta(days=1, hours=6, minutes=1)),
        make(
            "hpatel",
            status="not graded",
            outcome="repository unavailable",
            reason="repos/hw1/hpatel.bundle does not exist",
        ),
    ]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def parsed(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


def test_dashboard_counts_students_by_status_and_outcome(make_outcome: MakeOutcome) -> None:
    view = dashboard_view(the_class(make_outcome), make_outcome().assignment)
    assert view.students == 8
    assert [(c.label, c.count, c.percent) for c in view.statuses] == [
        ("graded", 7, "88%"),
        ("not graded", 1, "12%"),
    ]
    assert [(c.label, c.count) for c in view.outcomes] == [
        ("ok", 4),
        ("fail", 2),
        ("repository unavailable", 1),
        ("time limit exceeded", 1),
    ]
    assert dict(view.summary) == {
        "graded": "7",
        "mean": "75.71",
        "median": "85",
        "lowest": "0",
        "highest": "100",
    }


def test_score_distribution_puts_each_graded_score_in_its_tenth_of_the_maximum(
    make_outcome: MakeOutcome,
) -> None:
    view = dashboard_view(the_class(make_outcome), make_outcome().assignment)
    counts = {b.label: b.count for b in view.bins}
    assert counts["0\u201310"] == 1  # dnovak
    assert counts["60\u201370"] == 1  # bchen 65
    assert counts["80\u201390"] == 2  # erivera 85, gmueller 80
    assert counts["90\u2013100"] == 3  # 100 lands in the last range
    assert sum(counts.values()) == 7  # hpatel is not graded: no bar
    tallest = max(view.bins, key=lambda b: b.count)
    assert tallest.height == view.chart_height


@given(
    scores=st.lists(st.floats(min_value=0, max_value=250, allow_nan=False), max_size=40),
    max_points=st.sampled_from([1.0, 7.5, 100.0, 250.0]),
)
def test_every_score_falls_in_exactly_one_bar(scores: list[float], max_points: float) -> None:
    capped = [min(s, max_points) for s in scores]
    bins = score_bins(capped, max_points)
    assert len(bins) == 10
    assert sum(b.count for b in bins) == len(capped)
    assert all(0 <= b.height <= 160 for b in bins)


def test_per_test_pass_rates_name_hidden_tests_for_the_instructor(
    make_outcome: MakeOutcome,
) -> None:
    view = dashboard_view(the_class(make_outcome), make_outcome().assignment)
    rates = {t.name: t for t in view.tests}
    tie = rates[HIDDEN_FAIL]
    assert (tie.visibility, tie.points, tie.total) == ("hidden", "15", 7)
    # passed, failed, error, skipped, did not run
    assert tie.counts == (4, 2, 0, 0, 1)
    assert tie.passed_percent == 57
    assert rates["test_public_word_count_simple"].counts == (6, 0, 0, 0, 1)
    assert view.test_statuses == ("passed", "failed", "error", "skipped", "did not run")


def test_dashboard_lists_not_graded_students_with_reasons_and_late_ones_with_costs(
    make_outcome: MakeOutcome,
) -> None:
    view = dashboard_view(the_class(make_outcome), make_outcome().assignment)
    (missing,) = view.not_graded
    assert (missing.student_id, missing.what) == ("hpatel", "repository unavailable")
    assert missing.detail == "repos/hw1/hpatel.bundle does not exist"
    late = {line.student_id: line for line in view.late}
    assert set(late) == {"fsato", "gmueller"}
    assert late["gmueller"].what == "1 d 6 h 1 min"
    assert late["gmueller"].detail.endswith("= 20% off: 20 points")
    assert late["fsato"].what == "10 min (after an extension of 2 d)"
    assert late["fsato"].detail == "10 min late, within the 15-minute grace period"


def test_dashboard_page_is_self_contained_and_the_same_bytes_every_time(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcomes = the_class(make_outcome)
    path = write_dashboard(outcomes, outcomes[0].assignment, tmp_path / "one")
    again = write_dashboard(outcomes, outcomes[0].assignment, tmp_path / "two")
    assert path == tmp_path / "one" / "dashboard.html"
    assert path.read_bytes() == again.read_bytes()
    html = path.read_text(encoding="utf-8")
    page = parsed(html)
    assert "script" not in page.tags
    assert not re.search(r"src=", html)  # nothing fetched
    links = re.findall(r'href="([^"]*)"', html)  # only links to the instructor pages
    assert links and all(re.fullmatch(r"instructor/\w+\.html", link) for link in links)
    assert page.tags.count("rect") == 10
    text = " ".join(page.chunks)
    assert HIDDEN_FAIL in text
    assert "hpatel.bundle does not exist" in text
    assert "Not graded (1)" in text and "Late (2)" in text


def test_hostile_text_is_escaped_and_terminal_codes_never_reach_the_page(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    hostile = "\x1b[31m<script>alert(1)</script>\x07\u202e"
    outcomes = [
        make_outcome("bchen", tests=[TestOutcome("<img src=x>", status="ok")]),
        make_outcome("hpatel", status="not graded", outcome="infrastructure", reason=hostile),
    ]
    html = write_dashboard(outcomes, outcomes[0].assignment, tmp_path).read_text("utf-8")
    assert "script" not in parsed(html).tags and "img" not in parsed(html).tags
    assert "&lt;script&gt;" in html and "&lt;img src=x&gt;" in html
    assert "\x1b" not in html and "\x07" not in html and "\u202e" not in html


def test_a_dashboard_with_nobody_graded_says_so(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    outcomes = [make_outcome("hpatel", status="not graded", outcome="not graded yet")]
    html = write_dashboard(outcomes, outcomes[0].assignment, tmp_path).read_text("utf-8")
    assert "No student is graded yet." in html
    assert "No test results." in html


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reason=st.text(max_size=80), name=st.text(max_size=30))
def test_any_reason_or_name_reaches_the_page_without_control_characters(
    make_outcome: MakeOutcome, reason: str, name: str
) -> None:
    outcome = make_outcome(
        "hpatel",
        status="not graded",
        outcome="infrastructure",
        reason=reason,
        student=Student("hpatel", name=name),
    )
    (line,) = dashboard_view([outcome], outcome.assignment).not_graded
    for text in (line.name, line.detail):
        assert all(ch in "\n\t" or unicodedata.category(ch) != "Cc" for ch in text)
        assert not set(text) & BIDI_CONTROLS


def test_pass_rates_count_every_graded_student_and_no_glob_rule_is_a_test(
    make_outcome: MakeOutcome,
) -> None:
    """One definition in every assignment: a build error (its report lacks every test,
    and its glob rules matched nothing) counts in each test's rate as "did not run"."""
    built = [
        make_outcome(sid, "hw2", tests=[TestOutcome(f"test_public_{n}") for n in "ab"])
        for sid in ("amartin", "bchen", "erivera")
    ]
    broken = make_outcome("cokafor", "hw2", tests=[], outcome="build error")
    view = dashboard_view([*built, broken], broken.assignment)
    assert [t.name for t in view.tests] == ["test_public_a", "test_public_b"]
    for rate in view.tests:
        assert rate.total == 4
        assert rate.counts[view.test_statuses.index("did not run")] == 1
        assert rate.passed_percent == 75


def test_the_deadline_is_shown_in_the_course_time_zone(make_outcome: MakeOutcome) -> None:
    view = dashboard_view(
        the_class(make_outcome), make_outcome().assignment, zone=ZoneInfo("America/New_York")
    )
    assert view.deadline == "2026-09-18 23:59 EDT"


def test_every_student_has_a_row_linked_to_their_instructor_page(
    make_outcome: MakeOutcome,
) -> None:
    view = dashboard_view(the_class(make_outcome), make_outcome().assignment)
    rows = {r.student_id: r for r in view.rows}
    assert list(rows) == [o.student.student_id for o in the_class(make_outcome)]
    assert rows["gmueller"].link == "instructor/gmueller.html"
    assert (rows["gmueller"].score, rows["gmueller"].late) == ("80", "1 d 6 h 1 min")
    assert (rows["hpatel"].score, rows["hpatel"].outcome) == ("", "repository unavailable")
    assert not view.late_day_budget
