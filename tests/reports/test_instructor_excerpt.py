"""Program output made printable and cut with a notice (instructor view, dashboard)."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from grader.reports.excerpt import excerpt, printable

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

terminal_text = st.lists(
    st.text(max_size=20)
    | st.sampled_from(
        ["\x1b[31m", "\x1b[0m", "\x1b]8;;http://x\x1b\\", "\x1b]0;t\x07", "\x9b2J", "\x1bc", "\r\n"]
    ),
    max_size=12,
).map("".join)


def test_colour_codes_and_window_titles_are_removed_and_the_text_kept() -> None:
    text = "\x1b[1;31mFAILED\x1b[0m test_x \x1b]0;pwned\x07done\x1b]8;;http://e\x1b\\link"
    assert printable(text) == "FAILED test_x donelink"


def test_other_controls_become_visible_symbols_and_tabs_and_newlines_stay() -> None:
    assert printable("a\tb\r\nc\rd\x00e\x08f\x7fg\x85h\u202ei") == (
        "a\tb\nc\nd\u2400e\u2408f\u2421g\ufffdh\ufffdi"
    )


@given(terminal_text)
def test_printable_text_has_no_control_or_direction_characters(text: str) -> None:
    shown = printable(text)
    assert all(ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs") for ch in shown)
    assert not BIDI & set(shown)
    shown.encode("utf-8")  # always encodable


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=BIDI)
        | st.sampled_from("\n\t")
    )
)
def test_printable_keeps_text_without_controls_as_it_is(text: str) -> None:
    assert printable(text) == text


def test_short_output_comes_back_whole() -> None:
    assert excerpt("one\ntwo\n", max_lines=5, max_bytes=100) == "one\ntwo"


def test_a_cut_keeps_the_head_and_says_how_much_there_was() -> None:
    text = "\n".join(f"error {n}" for n in range(1, 11))
    assert excerpt(text, max_lines=3, max_bytes=1000) == (
        "error 1\nerror 2\nerror 3\n... (cut: showing the first 3 of 10 lines, 23 of 80 bytes)"
    )


def test_a_byte_cut_never_splits_a_character() -> None:
    cut = excerpt("\u00e9" * 10, max_lines=5, max_bytes=5)
    body, notice = cut.split("\n")
    assert body == "\u00e9\u00e9"
    assert notice == "... (cut: showing the first 1 of 1 lines, 4 of 20 bytes)"


@given(
    text=terminal_text,
    max_lines=st.integers(min_value=1, max_value=6),
    max_bytes=st.integers(min_value=1, max_value=60),
    keep=st.sampled_from(["head", "tail"]),
)
def test_an_excerpt_stays_within_its_limits_plus_one_notice_line(
    text: str, max_lines: int, max_bytes: int, keep: str
) -> None:
    result = excerpt(text, max_lines=max_lines, max_bytes=max_bytes, keep=keep)  # type: ignore[arg-type]
    whole = printable(text).rstrip("\n")
    if result == whole:
        assert whole.count("\n") < max_lines or not whole
        return
    lines = result.split("\n")
    notice = lines[0] if keep == "tail" else lines[-1]
    body = "\n".join(lines[1:] if keep == "tail" else lines[:-1])
    assert notice.startswith("... (cut: showing the ")
    assert len(body.encode("utf-8")) <= max_bytes
    assert body.count("\n") < max_lines
    assert whole.startswith(body) if keep == "head" else whole.endswith(body)
