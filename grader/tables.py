"""Rich's default table, written as plain text when that is exactly what rich would print.

`grader grade` ends with a table of every student. Rich lays it out cell by cell (about
0.1-0.2 s for 200 rows, after the last student is graded). Where the console has no
colours (a pipe, a log file, cron mail) and every cell is plain printable ASCII that fits,
rich's output is simple boxes and padding; ``plain_table`` writes those same bytes
directly. Anything else (a terminal, colours, markup or emoji codes, wide or control
characters, a table wider than the console) returns None, and rich prints it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

# what rich would turn into something else: markup tags and :emoji: codes (and, below,
# whitespace at either end of a cell, which its justification trims)
_RICH_SYNTAX = re.compile(r"\[|:\S*?:")
_PRINTABLE = re.compile(r"[ -~]*")


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # justified right (rich's justify="right"), else left


def plain_table(
    console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> str | None:
    """``Table(title=title, title_justify="left")`` with these columns and rows, as
    ``console.print`` would write it (no final newline), or None when only rich can."""
    if console.is_terminal or console.color_system is not None:
        return None
    texts = [title, *(c.header for c in columns), *(cell for row in rows for cell in row)]
    if any(not _PRINTABLE.fullmatch(t) or _RICH_SYNTAX.search(t) or t != t.strip() for t in texts):
        return None
    if any(len(row) != len(columns) for row in rows):
        return None
    widths = [
        max([len(column.header), *(len(row[i]) for row in rows)])
        for i, column in enumerate(columns)
    ]
    width = sum(widths) + 3 * len(widths) + 1
    if width > console.width or len(title) > width or not title:
        return None

    def rule(left: str, line: str, cross: str, right: str) -> str:
        return left + cross.join(line * (w + 2) for w in widths) + right

    def line(edge: str, cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(w) if column.right else cell.ljust(w)
            for cell, w, column in zip(cells, widths, columns, strict=True)
        )
        return edge + edge.join(f" {cell} " for cell in padded) + edge

    lines = [
        title,
        rule("┏", "━", "┳", "┓"),
        line("┃", [c.header for c in columns]),
        rule("┡", "━", "╇", "┩"),
        *(line("│", row) for row in rows),
        rule("└", "─", "┴", "┘"),
    ]
    return "\n".join(lines)
