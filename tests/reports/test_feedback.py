"""Feedback files: what a student sees, what they never see, and hostile text kept inert."""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from grader.errors import ConfigError
from grader.records import StudentOutcome, TestOutcome
from grader.reports.feedback import BUILD_LINES, write_feedback
from grader.reports.templating import environment, markdown_block, markdown_inline, template_dir
from grader.scoring import grade_submission

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
SHA = "0123456789abcdef0123456789abcdef01234567"  # the commit make_outcome records

AFTER_EVERYTHING = datetime(2027, 1, 1, tzinfo=UTC)
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def written(
    outcome: StudentOutcome, tmp_path: Path, now: datetime = AFTER_EVERYTHING
) -> dict[str, str]:
    write_feedback([outcome], tmp_path, now=now)
    sid = outcome.student.student_id
    folder = tmp_path / "feedback"
    return {s: (folder / f"{sid}{s}").read_text(encoding="utf-8") for s in (".md", ".html")}


def test_graded_feedback_gives_score_outcome_commit_and_each_test(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    failing = {"test_public_word_count_simple": "assert 3 == 4"}
    files = written(make_outcome(failing=failing), tmp_path)
    for text in files.values():
        assert "Score: 90 / 100" in text
        assert "Some tests failed" in text
        assert SHA in text
        assert "last commit, on time" in text
        assert "assert 3 == 4" in text
        assert "9 of 10 passed" in text
    assert "test\\_public\\_word\\_count\\_simple | failed | 0 / 10 |" in files[".md"]


def test_hidden_tests_show_neither_name_nor_message_but_their_points_count(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome(failing={HIDDEN_FAIL: "SECRET expected ['a', 'b']"})
    files = written(outcome, tmp_path)
    for text in files.values():
        assert "hidden" in text
        assert "test_hidden" not in text.replace("\\_", "_")
        assert "SECRET" not in text
        assert "Score: 85 / 100" in text
    assert "| hidden test 3 | failed | 0 / 15 |" in files[".md"]


def test_after_due_date_tests_are_hidden_until_the_deadline_passes(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    name = "test_public_top_words_simple"
    outcome = make_outcome(failing={name: "off by one"})
    rules = tuple(
        replace(r, visibility="after_due_date") if r.pattern == name else r
        for r in outcome.assignment.tests
    )
    later = replace(outcome.assignment, tests=rules)
    tests = [TestOutcome(name, status="failure", message="off by one")]
    grade = grade_submission(tests, later, engine_score=None, lateness=timedelta())
    outcome = replace(outcome, assignment=later, grade=grade)
    due = later.due_for(outcome.student.student_id)
    before = written(outcome, tmp_path / "before", now=due - timedelta(minutes=1))
    after = written(outcome, tmp_path / "after", now=due)
    assert "off by one" not in before[".md"] and "top\\_words\\_simple" not in before[".md"]
    assert "off by one" in after[".md"] and "top\\_words\\_simple" in after[".md"]


def test_not_graded_feedback_gives_the_reason_and_never_a_score(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome(
        "hpatel",
        "hw2",
        status="not graded",
        outcome="repository unavailable",
        reason="repos/hw2/hpatel.bundle does not exist",
    )
    for text in written(outcome, tmp_path).values():
        assert "Not graded: repository unavailable." in text
        assert "hpatel.bundle does not exist" in text.replace("\\", "")
        assert "not a zero" in text
        assert "Score" not in text
        assert "0 / 100" not in text
        assert "with your extension of 3 d" in text


def test_build_error_shows_capped_compiler_output_and_tests_that_did_not_run(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    compiler = "\n".join(f"src/rpn.c:{n}: error: expected ';'" for n in range(1, 500))
    outcome = make_outcome("cokafor", "hw2", tests=[], outcome="build error", build_output=compiler)
    files = written(outcome, tmp_path)
    for text in files.values():
        assert "Score: 0 / 100" in text
        assert "did not compile" in text
        assert "src/rpn.c:1: error" in text
        assert f"src/rpn.c:{BUILD_LINES}: error" in text
        assert f"src/rpn.c:{BUILD_LINES + 1}: error" not in text
        assert "... (cut: showing the first" in text
        assert "did not run" in text
        assert "Tests (none ran)" in text  # the rules are no tests: no "0 of 2 passed"
        assert " of 2 passed" not in text
    assert (
        "every test matching test\\_public\\_\\* | did not run | 0 (20 per test) |" in files[".md"]
    )


def test_a_build_error_lists_each_test_a_glob_rule_prices_when_the_project_defines_them(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome("cokafor", "hw2", tests=[], outcome="build error")
    defined = [f"test_public_{n}" for n in "ab"] + [f"test_hidden_{n}" for n in "abcdef"]
    grade = grade_submission(
        [], outcome.assignment, engine_score=None, lateness=timedelta(), defined=defined
    )
    assert len(grade.tests) == 8
    assert sum(t.points_possible for t in grade.tests) == 100
    files = written(replace(outcome, grade=grade), tmp_path)
    for text in files.values():
        assert "Tests (0 of 8 passed)" in text
        assert "matching" not in text
    assert "| test\\_public\\_a | did not run | 0 / 20 |" in files[".md"]
    assert "| hidden test 6 | did not run | 0 / 10 |" in files[".md"]


def test_public_tests_are_listed_before_hidden_ones(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    tests = [
        TestOutcome("test_hidden_word_count_punctuation"),
        TestOutcome("test_public_word_count_simple"),
        TestOutcome("test_hidden_unique_words_ignore_case", status="failure"),
        TestOutcome("test_public_unique_words_sorted"),
    ]
    md = written(make_outcome(tests=tests), tmp_path)[".md"]
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ")][1:]
    assert rows[:2] == [
        "| test\\_public\\_word\\_count\\_simple",
        "| test\\_public\\_unique\\_words\\_sorted",
    ]
    hidden = [i for i, row in enumerate(rows) if row.startswith("| hidden test")]
    assert hidden == list(range(len(rows) - 6, len(rows)))  # every hidden test last
    assert rows[-6:-4] == ["| hidden test 1", "| hidden test 2"]


def test_a_test_that_hung_is_named_with_its_limit_even_when_hidden(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    hung = "StudentTimeout: timed out after 1 s: solution.top_words()"
    secret = "timed out after 1 s: solution.top_words('SECRET INPUT', 3)"
    failing = {"test_public_top_words_simple": hung, HIDDEN_FAIL: secret}
    files = written(make_outcome(failing=failing), tmp_path)
    for text in files.values():
        assert "SECRET" not in text
        assert "timed out after 1 s" in text
    md = files[".md"].replace("\\", "")
    assert "| test_public_top_words_simple | timed out | 0 / 10 |" in md
    assert "| hidden test 3 | timed out | 0 / 15 |" in md
    assert (
        "Tests that ran past their time limit: test_public_top_words_simple timed out after 1 s;"
        " hidden test 3 timed out after 1 s." in md
    )


def test_a_run_stage_timeout_names_the_stage_and_its_limit(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    reason = (
        "the run stage was stopped at its time limit of 20 s; the tests that had not"
        " finished by then did not run"
    )
    outcome = make_outcome(tests=[], outcome="time limit exceeded", reason=reason)
    md = written(outcome, tmp_path)[".md"].replace("\\", "")
    assert "What happened: the run stage was stopped at its time limit of 20 s" in md


def test_moments_are_shown_in_the_course_time_zone(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome()
    write_feedback([outcome], tmp_path, now=AFTER_EVERYTHING, zone=ZoneInfo("America/New_York"))
    md = (tmp_path / "feedback" / "bchen.md").read_text()
    assert "Deadline: 2026-09-18 23:59 EDT" in md
    assert "committed 2026-09-18 19:05 EDT" in md
    assert "UTC" not in md


def test_late_penalty_is_explained_with_its_numbers(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome("gmueller", outcome="ok", lateness=timedelta(days=1, hours=6, minutes=1))
    md = written(outcome, tmp_path)[".md"]
    assert "Score: 80 / 100" in md
    assert "Submitted 1 d 6 h 1 min after the deadline" in md
    assert "2 started days x 10% = 20% off, so 20 of your 100 points were taken off" in md.replace(
        "\\", ""
    )


def test_inside_the_grace_period_feedback_says_no_penalty(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome("fsato", "hw2", outcome="ok", lateness=timedelta(minutes=10))
    md = written(outcome, tmp_path)[".md"]
    assert "10 min late, within the 15-minute grace period" in md
    assert "Score: 0 / 100" not in md


HOSTILE = "```\n</pre><script>alert(1)</script>\n# Heading\n[click](http://evil)\n````"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)


def tags_of(html: str) -> set[str]:
    parser = _Tags()
    parser.feed(html)
    return set(parser.tags)


def test_hostile_test_messages_stay_text_in_html_and_markdown(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    tests = [
        TestOutcome(
            "test_public_word_count_simple",
            status="failure",
            message=HOSTILE,
            output=HOSTILE + "\ntraceback",
        )
    ]
    outcome = make_outcome(tests=tests, commit_reason="<b>evil</b> subject **x**")
    files = written(outcome, tmp_path)
    assert "script" not in tags_of(files[".html"])
    assert "b" not in tags_of(files[".html"])
    assert "&lt;script&gt;" in files[".html"]
    rendered = MARKDOWN.render(files[".md"])
    assert {"script", "a", "b"}.isdisjoint(tags_of(rendered))
    assert "<h1>Heading</h1>" not in rendered
    assert rendered.count("<h1>") == 1  # only the assignment title


def test_feedback_bytes_are_the_same_every_time(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    outcomes = [make_outcome(s, failing={HIDDEN_FAIL: "x"}) for s in ("a", "b")]
    write_feedback(outcomes, tmp_path / "one", now=AFTER_EVERYTHING)
    write_feedback(outcomes, tmp_path / "two", now=AFTER_EVERYTHING)
    for name in ("a.md", "a.html", "b.md", "b.html"):
        one = (tmp_path / "one" / "feedback" / name).read_bytes()
        assert one == (tmp_path / "two" / "feedback" / name).read_bytes()
        assert b"\r" not in one


@pytest.mark.parametrize("student_id", ["../escape", "a/b", "..", ""])
def test_a_student_id_that_is_not_a_file_name_is_refused(
    make_outcome: MakeOutcome, tmp_path: Path, student_id: str
) -> None:
    with pytest.raises(ConfigError, match="cannot be used as a file name"):
        write_feedback([make_outcome(student_id)], tmp_path)
    assert not (tmp_path.parent / "escape.md").exists()


def test_templates_are_strict_and_escape_only_html() -> None:
    env = environment()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    assert env.get_template("feedback.html.j2").name == "feedback.html.j2"
    assert env.from_string("{{ '<b>' }}").render() == "&lt;b&gt;"  # strings default to escaped
    autoescape = env.autoescape
    assert callable(autoescape)
    assert autoescape("feedback.html.j2") is True
    assert autoescape("feedback.md.j2") is False


def test_templates_come_from_the_checkout_when_running_from_source() -> None:
    found = template_dir()
    assert (found / "feedback.md.j2").is_file()
    assert found.name in ("templates", "_templates")


def test_feedback_with_unweighted_tests_shows_results_without_points(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    outcome = make_outcome()
    plain = replace(outcome.assignment, tests=())
    tests = [TestOutcome("test_x"), TestOutcome("test_y", status="error")]
    grade = grade_submission(tests, plain, engine_score=50.0, lateness=timedelta())
    md = written(replace(outcome, assignment=plain, grade=grade), tmp_path)[".md"]
    assert "Score: 50 / 100" in md
    assert "| test\\_y | error |\n" in md
    assert "Points |" not in md


# Markdown escaping, as CommonMark itself reads it --------------------------------------


def _text_of(html: str) -> str:
    """The text of rendered HTML with tags dropped and entities decoded."""
    return html_module.unescape(re.sub(r"<[^>]+>", "", html)).strip()


@given(st.text(max_size=80))
def test_inline_markdown_renders_as_the_literal_text(text: str) -> None:
    rendered = MARKDOWN.render(markdown_inline(text))
    assert set(tags_of(rendered)) <= {"p"}
    assert _text_of(rendered) == " ".join(text.split()).replace("\x00", "\ufffd")


@given(st.text(max_size=120))
def test_fenced_text_is_one_code_block_holding_exactly_the_text(text: str) -> None:
    rendered = MARKDOWN.render(markdown_block(text))
    assert rendered.count("<pre>") == 1
    assert rendered.endswith("</code></pre>\n")
    body = re.sub(r"^<pre><code[^>]*>", "", rendered)[: -len("</code></pre>\n")]
    expected = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").replace("\x00", "\ufffd")
    assert html_module.unescape(body) == expected + "\n"


def test_terminal_escapes_in_compiler_output_never_reach_feedback(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    compiler = "\x1b[1;31merror:\x1b[0m expected semicolon\n\x1b]0;pwned\x07\u202eevil\x00"
    outcome = make_outcome("cokafor", "hw2", tests=[], outcome="build error", build_output=compiler)
    for text in written(outcome, tmp_path).values():
        assert "error: expected semicolon" in text
        assert "\x1b" not in text and "\x07" not in text and "\x00" not in text
        assert "\u202e" not in text  # a bidi override would reorder what the student reads
