"""Tests reports -> ``TestOutcome`` records, whatever the report's format.

Three formats are read, told apart by their first character and top-level shape:

* Sphere Engine's ``tests_report`` stream: a JSON array of
  ``{name, classname, status: ok|failure|error, time, failure|error}``;
* JUnit / xUnit XML (``<testsuites>`` or a bare ``<testsuite>`` root, pytest's xunit1 and
  xunit2 families alike), read with ``junitparser``;
* Gradescope's ``results.json``: an object with a ``tests`` list of
  ``{name, score, max_score, status: passed|failed, output, visibility}``.

Reports come out of sandboxes that ran student code, so they are hostile: every field
is type-checked, strings are capped and made valid UTF-8, numbers must be finite, and
XML may not declare a DTD (no entity expansion). Anything unreadable raises
``TestReportError`` naming the format and the item at fault; nothing else escapes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal, cast
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

from junitparser import Error, Failure, JUnitXml, JUnitXmlError, Skipped

from grader.config import Visibility
from grader.errors import TestReportError
from grader.records import TEST_STATUSES, TestOutcome, TestStatus

ReportFormat = Literal["sphere-engine", "junit", "gradescope"]

MAX_REPORT_CHARS = 20_000_000  # the pipeline already caps streams far below this
MESSAGE_CAP = 2_000  # characters of a test's message kept
OUTPUT_CAP = 10_000  # characters of a test's output (traceback, captured streams) kept
TRUNCATED = "\n... (truncated)"

_GRADESCOPE_VISIBILITY: dict[str, Visibility] = {
    "visible": "visible",
    "hidden": "hidden",
    "after_due_date": "after_due_date",
    "after_published": "hidden",  # we publish nothing later: treat as hidden
}
_STATUSES: dict[str, TestStatus] = {status: status for status in TEST_STATUSES}
_LABELS: dict[ReportFormat, str] = {
    "sphere-engine": "tests report (Sphere Engine JSON)",
    "junit": "tests report (JUnit XML)",
    "gradescope": "tests report (Gradescope results.json)",
}


def parse_tests_report(text: str) -> list[TestOutcome]:
    """Every test in a report, in report order; raises ``TestReportError`` if unreadable.

    Empty (or blank) text is a report of no tests.
    """
    if len(text) > MAX_REPORT_CHARS:
        raise TestReportError(
            f"tests report: {len(text)} characters is more than {MAX_REPORT_CHARS}"
        )
    body = text.lstrip("\ufeff \t\r\n")
    if not body:
        return []
    kind = detect_format(body)
    if kind == "junit":
        return _junit(body)
    data = _load_json(body, kind)
    if kind == "sphere-engine":
        return _sphere_engine(data)
    return _gradescope(data)


def detect_format(text: str) -> ReportFormat:
    """Which format ``text`` is in, from its first significant character."""
    first = text.lstrip("\ufeff \t\r\n")[:1]
    if first == "<":
        return "junit"
    if first == "[":
        return "sphere-engine"
    if first == "{":
        return "gradescope"
    shown = repr(text.strip()[:40])
    raise TestReportError(
        f"tests report: not JSON or XML (starts with {shown}); expected a Sphere Engine "
        "JSON array, JUnit XML or a Gradescope results.json object"
    )


def _load_json(text: str, kind: ReportFormat) -> Any:
    def reject_constant(name: str) -> float:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        return json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise TestReportError(
            f"{_LABELS[kind]}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise TestReportError(f"{_LABELS[kind]}: invalid JSON: {exc}") from exc


# Sphere Engine -----------------------------------------------------------------------


def _sphere_engine(data: Any) -> list[TestOutcome]:
    label = _LABELS["sphere-engine"]
    if not isinstance(data, list):
        raise TestReportError(f"{label}: expected an array of tests")
    outcomes = []
    for index, item in enumerate(data, start=1):
        field = _Fields(item, f"{label}: item {index}")
        status_text = field.text("status")
        status = _STATUSES.get(status_text)
        if status is None:
            raise field.error(f"status {status_text!r} is not one of {', '.join(TEST_STATUSES)}")
        # The failure text is "message, then traceback": its first line is the message.
        text = field.text("failure") or field.text("error") or field.text("message")
        output = "\n".join(filter(None, [text, field.text("output")]))
        outcomes.append(
            TestOutcome(
                name=field.text("name", required=True),
                classname=field.text("classname"),
                status=status,
                time=field.seconds("time"),
                message=_cap(_first_line(text), MESSAGE_CAP),
                output=_cap(output if "\n" in output else "", OUTPUT_CAP),
            )
        )
    return outcomes


# Gradescope --------------------------------------------------------------------------


def _gradescope(data: Any) -> list[TestOutcome]:
    label = _LABELS["gradescope"]
    if not isinstance(data, dict):
        raise TestReportError(f"{label}: expected an object")
    top = _Fields(data, label)
    tests = data.get("tests")
    if tests is None:
        # Only a total: one outcome carries it, so the points still count.
        total = top.number("score")
        if total is None:
            raise top.error("has neither a 'tests' list nor a 'score'")
        output = _cap(top.text("output"), OUTPUT_CAP)
        return [TestOutcome(name="autograder", points=total, output=output)]
    if not isinstance(tests, list):
        raise top.error("'tests' must be a list")
    return [_gradescope_test(item, index, label) for index, item in enumerate(tests, start=1)]


def _gradescope_test(item: Any, index: int, label: str) -> TestOutcome:
    field = _Fields(item, f"{label}: test {index}")
    points = field.number("score")
    max_points = field.number("max_score")
    status_text = field.text("status")
    status: TestStatus
    if status_text == "passed":
        status = "ok"
    elif status_text == "failed":
        status = "failure"
    elif status_text:
        raise field.error(f"status {status_text!r} is not 'passed' or 'failed'")
    else:  # Gradescope's rule without a status: full marks pass
        passed = points is None or max_points is None or points >= max_points
        status = "ok" if passed else "failure"
    visibility_text = field.text("visibility")
    if visibility_text and visibility_text not in _GRADESCOPE_VISIBILITY:
        raise field.error(f"visibility {visibility_text!r} is not one Gradescope knows")
    number = field.text("number") or str(index)
    return TestOutcome(
        name=field.text("name") or f"test {number}",
        status=status,
        time=field.seconds("execution_time"),
        output=_cap(field.text("output"), OUTPUT_CAP),
        points=points,
        max_points=max_points,
        visibility=_GRADESCOPE_VISIBILITY.get(visibility_text),
    )


# JUnit XML ---------------------------------------------------------------------------


def _junit(text: str) -> list[TestOutcome]:
    label = _LABELS["junit"]
    try:
        # junitparser annotates fromroot with its own Element wrapper; it takes etree's.
        xml = JUnitXml.fromroot(cast(Any, _parse_xml(text)))
        return list(_junit_cases(xml, label))
    except _DoctypeError as exc:
        raise TestReportError(f"{label}: a DTD is not allowed in a test report") from exc
    except ParseError as exc:
        line, column = exc.position
        where = f"line {line}, column {column}"
        raise TestReportError(f"{label}: {where}: not well-formed XML") from exc
    except JUnitXmlError as exc:
        root = "the root element must be <testsuites> or <testsuite>"
        raise TestReportError(f"{label}: {root}") from exc
    except (RecursionError, ValueError) as exc:
        raise TestReportError(f"{label}: cannot be read: {exc}") from exc


class _DoctypeError(Exception):
    """Raised from inside expat when a report declares a DTD."""


class _NoDoctype(TreeBuilder):
    """Builds the tree, but stops at a DTD before any entity is declared."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DoctypeError


def _parse_xml(text: str) -> Element:
    """Parse without DTDs, so no entity can expand (what defusedxml does)."""
    # S314: expat resolves no external entities and we refuse DTDs, hence all entities.
    parser: XMLParser[Element] = XMLParser(target=_NoDoctype())  # noqa: S314
    parser.feed(text)
    return parser.close()


def _junit_cases(xml: JUnitXml, label: str) -> Iterator[TestOutcome]:
    for number, case in enumerate((c for suite in xml for c in suite), start=1):
        name = _clean(case.name or "")
        if not name:
            raise TestReportError(f"{label}: testcase {number} has no name")
        results = case.result
        status, message, details = _junit_result(results)
        streams = [s for s in (case.system_out, case.system_err) if s]
        output = "\n".join(filter(None, [details, *streams]))
        yield TestOutcome(
            name=name,
            classname=_clean(case.classname or ""),
            status=status,
            time=_junit_time(case),
            message=_cap(message, MESSAGE_CAP),
            output=_cap(output, OUTPUT_CAP),
        )


def _junit_result(results: list[Any]) -> tuple[TestStatus, str, str]:
    """Status, short message and long text of a testcase's result elements."""
    order: tuple[tuple[type, TestStatus], ...] = (
        (Error, "error"),
        (Failure, "failure"),
        (Skipped, "skipped"),
    )
    for kind, status in order:
        found: Any = next((r for r in results if isinstance(r, kind)), None)
        if found is not None:
            text = _clean(found.text or "")
            message = _clean(found.message or "") or _first_line(text)
            return status, message, text
    return "ok", "", ""


def _junit_time(case: Any) -> float:
    raw = case._elem.get("time")  # junitparser's own float() would raise on junk
    try:
        value = float(str(raw).replace(",", "")) if raw else 0.0
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


# Shared field checks -----------------------------------------------------------------


class _Fields:
    """Typed access to one JSON object of a report, with errors that name it."""

    def __init__(self, item: Any, where: str):
        if not isinstance(item, dict):
            raise TestReportError(f"{where}: expected an object, got {_json_type(item)}")
        self.item: Mapping[str, Any] = item
        self.where = where

    def error(self, message: str) -> TestReportError:
        # Items are named by position, never by test name: the message may reach the
        # student as a "not graded" reason, and hidden tests' names must not.
        return TestReportError(f"{self.where}: {message}")

    def text(self, key: str, *, default: str = "", required: bool = False) -> str:
        value = self.item.get(key)
        if value is None:
            if required:
                raise self.error(f"{key!r} is missing")
            return default
        if not isinstance(value, str):
            raise self.error(f"{key!r} must be a string, got {_json_type(value)}")
        if required and not value:
            raise self.error(f"{key!r} is empty")
        return _clean(value)

    def number(self, key: str) -> float | None:
        value = self.item.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"{key!r} must be a number, got {_json_type(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise self.error(f"{key!r} is not a finite number")
        return number

    def seconds(self, key: str) -> float:
        """A duration; reports disagree on its type, and it never decides a grade."""
        value = self.item.get(key)
        if isinstance(value, str):
            value = _to_float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return 0.0
        number = float(value)
        return number if math.isfinite(number) and number >= 0 else 0.0


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "a value")


def _clean(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (JSON allows them) become U+FFFD."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + TRUNCATED
