"""Program output made safe to show: terminal escapes gone, controls visible, size capped.

Compiler output, debug logs and test messages come from student code and its sandbox:
they may hold ANSI colour codes, terminal control sequences, bidirectional overrides
(which reorder what a reader sees) and megabytes of noise. ``printable`` removes the
escape sequences and shows every other control character as a visible symbol, so none
reaches an HTML page or a Markdown file raw; ``excerpt`` also cuts by lines and by
UTF-8 bytes, and says what it cut. ``safe_text`` keeps a spreadsheet cell from being run
as a formula.
"""

from __future__ import annotations

import re
from typing import Literal

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), the 8-bit CSI, and two-character ESC
# sequences: colours, cursor moves, window titles, hyperlinks.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[@-Z\\-_]"
)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
REPLACEMENT = "\ufffd"
# every character _visible changes: C0 controls but tab and newline, DEL and C1, lone
# surrogates, bidirectional controls (the rest of a text is kept as it is, at C speed)
_UNSEEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff" + "".join(sorted(_BIDI)) + "]")

Keep = Literal["head", "tail"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """``text`` without terminal escapes; other controls shown as symbols (tab, newline kept)."""
    text = _ESCAPES.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _UNSEEN.sub(lambda found: _visible(found.group()), text)


def excerpt(text: str, *, max_lines: int, max_bytes: int, keep: Keep = "head") -> str:
    """``printable(text)`` cut to ``max_lines`` lines and ``max_bytes`` bytes, with a notice.

    ``keep="head"`` keeps the start (a compiler's first errors), ``"tail"`` the end (where
    a log says what went wrong last).
    """
    clean = printable(text).rstrip("\n")
    lines = clean.split("\n") if clean else []
    chosen = lines[:max_lines] if keep == "head" else lines[-max_lines:] if max_lines else []
    body = "\n".join(chosen)
    data = body.encode("utf-8")
    if len(data) > max_bytes:
        cut = data[:max_bytes] if keep == "head" else data[len(data) - max_bytes :]
        body = cut.decode("utf-8", errors="ignore")  # drops a character split by the cut
    if body == clean:
        return clean
    shown = body.count("\n") + 1 if body else 0
    where = "first" if keep == "head" else "last"
    total = len(clean.encode("utf-8"))
    notice = (
        f"... (cut: showing the {where} {shown} of {len(lines)} lines, "
        f"{len(body.encode('utf-8'))} of {total} bytes)"
    )
    return f"{body}\n{notice}" if keep == "head" else f"{notice}\n{body}"


def _visible(ch: str) -> str:
    code = ord(ch)
    if ch in "\n\t":
        return ch
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400 block: a visible picture of each C0 control
    if code == 0x7F:
        return "\u2421"
    if 0x80 <= code < 0xA0 or 0xD800 <= code < 0xE000 or ch in _BIDI:
        return REPLACEMENT
    return ch


def safe_text(text: str) -> str:
    """A leading apostrophe stops a spreadsheet from running the cell as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def number_text(value: float) -> str:
    """100.0 -> '100', 82.5 -> '82.5' (scores are already rounded to hundredths)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
