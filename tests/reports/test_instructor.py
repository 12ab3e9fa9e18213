"""Instructor view: everything shown, kept apart from feedback, output cut and made inert."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from markdown_it import MarkdownIt

from grader.errors import ConfigError
from grader.records import StudentOutcome, TestOutcome
from grader.reports.feedback import write_feedback
from grader.reports.instructor import LOG_LINES, instructor_view, write_instructor_views

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)


def tags_of(html: str) -> list[str]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def written(outcome: StudentOutcome, tmp_path: Path) -> dict[str, str]:
    write_instructor_views([outcome], tmp_path)
    folder = tmp_path / "instructor"
    sid = outcome.student.student_id
    return {s: (folder / f"{sid}{s}").read_text(encoding="utf-8") for s in (".md", ".html")}


def test_instructor_view_names_hidden_tests_with_their_messages_and_notes(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome(failing={HIDDEN_FAIL: "SECRET expected ['a', 'b']"})
    assert outcome.grade is not None
    grade = replace(outcome.grade, warnings=("weights sum to 99",))
    files = written(replace(outcome, grade=grade), tmp_path)
    html = files[".html"]
    assert HIDDEN_FAIL in html
    assert "SECRET expected [&#39;a&#39;, &#39;b&#39;]" in html
    assert "weights sum to 99" in html
    assert "Instructor view: not for students." in html
    assert "Score: 85 / 100" in html
    md = files[".md"].replace("\\", "")
    assert HIDDEN_FAIL in md and "SECRET" in md and "weights sum to 99" in md
    assert "| test_hidden_top_words_ties_alphabetical | hidden | failed | 0 / 15 |" in md


def test_instructor_pages_live_apart_from_the_student_feedback(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome(failing={HIDDEN_FAIL: "SECRET"})
    paths = write_instructor_views([outcome], tmp_path)
    write_feedback([outcome], tmp_path)
    assert paths == [tmp_path / "instructor" / "bchen.md", tmp_path / "instructor" / "bchen.html"]
    for path in (tmp_path / "feedback").iterdir():
        assert "SECRET" not in path.read_text(encoding="utf-8")
        assert "instructor" not in path.read_text(encoding="utf-8")


def test_not_graded_instructor_view_gives_reason_engine_and_debug_log(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome(
        "hpatel",
        status="not graded",
        outcome="infrastructure",
        reason="engine answered 20 (internal error) 3 times",
        engine_status="internal error",
        debug_log="starting\nsandbox: bwrap failed\n",
        attempts=3,
    )
    for text in written(outcome, tmp_path).values():
        text = text.replace("\\", "")
        assert "not graded; never exported as 0" in text
        assert "engine answered 20 (internal error) 3 times" in text
        assert "engine status: internal error; attempts: 3" in text
        assert "sandbox: bwrap failed" in text


def test_long_debug_logs_keep_their_end_and_say_what_was_cut(make_outcome: MakeOutcome) -> None:
    log = "\n".join(f"line {n}" for n in range(1, 5001))
    view = instructor_view(make_outcome(debug_log=log))
    lines = view.debug_log.split("\n")
    kept = len("\n".join(lines[1:]))
    assert lines[0] == (
        f"... (cut: showing the last {LOG_LINES} of 5000 lines, {kept} of {len(log)} bytes)"
    )
    assert lines[1] == f"line {5001 - LOG_LINES}"
    assert lines[-1] == "line 5000"


def test_terminal_codes_and_hostile_markup_stay_inert_in_both_pages(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    hostile = "\x1b[1;31mred\x1b[0m </pre><script>x()</script>\x1b]0;title\x07\x08\u202e```\n# H"
    tests = [TestOutcome(HIDDEN_FAIL, status="failure", message=hostile, output=hostile * 2)]
    outcome = make_outcome(tests=tests, build_output=hostile, reason=hostile)
    files = written(outcome, tmp_path)
    for text in files.values():
        assert not {"\x1b", "\x07", "\x08", "\u202e"} & set(text)
        assert "[1;31m" not in text and "0;title" not in text
        assert "\u2408" in text  # the backspace, shown as a symbol
    assert "script" not in tags_of(files[".html"])
    rendered = MARKDOWN.render(files[".md"])
    assert "script" not in tags_of(rendered)
    assert "<h1>H</h1>" not in rendered
    assert tags_of(rendered).count("h1") == 1


def test_instructor_pages_are_the_same_bytes_every_time(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome(failing={HIDDEN_FAIL: "x"}, debug_log="log\n")
    write_instructor_views([outcome], tmp_path / "one")
    write_instructor_views([outcome], tmp_path / "two")
    for name in ("bchen.md", "bchen.html"):
        one = (tmp_path / "one" / "instructor" / name).read_bytes()
        assert one == (tmp_path / "two" / "instructor" / name).read_bytes()


@pytest.mark.parametrize("student_id", ["../escape", "a/b", ".."])
def test_a_student_id_that_is_not_a_file_name_is_refused(
    make_outcome: MakeOutcome, tmp_path: Path, student_id: str
) -> None:
    with pytest.raises(ConfigError, match="cannot be used as a file name"):
        write_instructor_views([make_outcome(student_id)], tmp_path)
    assert list((tmp_path / "instructor").iterdir()) == []


def test_the_instructor_page_shows_moments_in_the_course_time_zone(
    make_outcome: MakeOutcome,
) -> None:
    view = instructor_view(make_outcome(), zone=ZoneInfo("America/New_York"))
    assert view.deadline == "2026-09-18 23:59 EDT"
    assert view.committed_at == "2026-09-18 19:05 EDT"
