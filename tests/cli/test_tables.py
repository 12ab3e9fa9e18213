"""``plain_table`` writes exactly what rich prints for the same table, or leaves it to rich."""

from __future__ import annotations

import io
import random
import string

import pytest
from rich.console import Console
from rich.table import Table

from grader.cli import GRADE_COLUMNS as COLUMNS
from grader.tables import Column, plain_table


def console(width: int = 132, **options: object) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    made = Console(file=out, highlight=False, soft_wrap=True, width=width, **options)  # type: ignore[arg-type]
    return made, out


def by_rich(
    title: str, columns: tuple[Column, ...], rows: list[tuple[str, ...]], width: int
) -> str:
    made, out = console(width)
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.header, justify="right" if column.right else "left")
    for row in rows:
        table.add_row(*row)
    made.print(table)
    return out.getvalue()


def by_plain(
    title: str, columns: tuple[Column, ...], rows: list[tuple[str, ...]], width: int
) -> str | None:
    made, out = console(width)
    text = plain_table(made, title, columns, rows)
    if text is None:
        return None
    made.print(text, markup=False, highlight=False, emoji=False)
    return out.getvalue()


def random_rows(rng: random.Random, count: int) -> list[tuple[str, ...]]:
    letters = string.ascii_letters + string.digits + " ./-_()'!@#$%^&*+=,;<>?|{}~`\\\""
    return [
        tuple(
            "".join(rng.choice(letters) for _ in range(rng.randrange(0, 14))).strip()
            for _ in COLUMNS
        )
        for _ in range(count)
    ]


def test_random_ascii_tables_are_written_as_rich_prints_them() -> None:
    written = 0
    for seed in range(40):
        rng = random.Random(seed)
        rows = random_rows(rng, rng.randrange(0, 30))
        title = rng.choice(["hw1: Intro to Programming", "x", "hw2: CS 101 (fall)", "a" * 60])
        width = rng.choice([80, 132, 200])
        plain = by_plain(title, COLUMNS, rows, width)
        if plain is not None:
            assert plain == by_rich(title, COLUMNS, rows, width), seed
            written += 1
        else:  # only a table too wide for the console, or a title wider than the table
            assert len(title) > 40 or width < 132, seed
    assert written > 20  # most were not left to rich


def test_cells_with_spaces_at_either_end_are_left_to_rich() -> None:
    for cell in (" Ann", "Ann "):
        rows = [("s1", cell, "1/1", "graded", "ok", "")]
        assert by_plain("hw1: Course", COLUMNS, rows, 132) is None


def test_the_grade_summary_of_200_students_is_written_plainly() -> None:
    rows = [
        (f"s{i:04d}", f"Student {i}", f"{i % 11}/10", "graded", "ok", f"{i:010x}")
        for i in range(200)
    ]
    rows.append(("s9999", "Late Person", "-", "not graded", "engine error", ""))
    plain = by_plain("hw1: Course", COLUMNS, rows, 132)
    assert plain is not None
    assert plain == by_rich("hw1: Course", COLUMNS, rows, 132)


@pytest.mark.parametrize(
    "cell",
    [
        "[bold]Ann[/]",  # rich markup
        "Ann :smile:",  # an emoji code
        "Zoë",  # not ASCII
        "李",  # wide
        "tab\there",
        "two\nlines",
    ],
)
def test_cells_rich_would_change_are_left_to_rich(cell: str) -> None:
    rows = [("s1", cell, "1/1", "graded", "ok", "")]
    assert by_plain("hw1: Course", COLUMNS, rows, 132) is None


def test_a_terminal_or_colours_are_left_to_rich() -> None:
    rows = [("s1", "Ann", "1/1", "graded", "ok", "")]
    for options in ({"force_terminal": True}, {"color_system": "standard", "force_terminal": True}):
        made, _ = console(**options)
        assert plain_table(made, "hw1: Course", COLUMNS, rows) is None


def test_a_table_wider_than_the_console_is_left_to_rich() -> None:
    rows = [("s1", "A" * 100, "1/1", "graded", "ok", "0123456789")]
    assert by_plain("hw1: Course", COLUMNS, rows, 132) is None
    assert by_plain("hw1: Course", COLUMNS, rows, 200) == by_rich("hw1: Course", COLUMNS, rows, 200)
