"""The local engine's ``se_utils_cli``: JUnit XML -> tests report, and explicit results.

This file is two things at once. Imported (``grader.engine.evaluate``) it is a set of pure
functions the runner and the tests use. Run as a file inside the sandbox (the runner puts
a ``se_utils_cli`` launcher on ``PATH`` that executes this file with the sandbox's
``python3 -I -S``) it is the toolkit command a project's test stage calls:

``se_utils_cli evaluate``
    read the xUnit/JUnit XML at ``$SE_PATH_UNIT_TESTS_REPORT``, write the JSON tests report
    to ``$SE_PATH_FINAL_TESTS_REPORT`` and the scenario result (OK when every test is ok,
    else FAIL; score = percentage of tests ok) to ``$SE_PATH_SCENARIO_RESULT``. A missing
    or unreadable XML is FAIL with score 0 and the reason in the result.
``se_utils_cli scenario_result status <BE|RE|TLE|FAIL|OK>``
    set the submission's status explicitly (the score already recorded is kept).

So it must import nothing but the standard library, and stay readable by an older
``python3`` than the grader's own (3.9 is enough: annotations are never evaluated).

The XML comes from a process that ran student code: it is capped in size, may not declare
a DTD (so no entity can expand), and every field is checked before it is written out.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

MAX_XML_BYTES = 16_000_000  # a pytest report of 10 000 tests is ~2 MB
MAX_TESTS = 10_000
NAME_CAP = 1_000  # characters of a test or class name
MESSAGE_CAP = 10_000  # characters of a failure text kept
TRUNCATED = "\n... (truncated)"

STATUS_CODES = {"BE": 11, "RE": 12, "TLE": 13, "FAIL": 14, "OK": 15}
"""The toolkit's status abbreviations and the submission status codes they stand for."""

REPORT_STATUSES = ("ok", "failure", "error", "skipped")

TestCase = dict[str, Any]  # one tests-report item: name, classname, status, time, [text]
Result = dict[str, Any]  # the scenario result file: status, score, reason


class ReportError(ValueError):
    """The unit-tests XML cannot be turned into a tests report; the message says why."""


# JUnit XML -> tests report (pure) ---------------------------------------------------------


class _NoDoctype(TreeBuilder):
    """Builds the tree, but stops at a DTD before any entity is declared."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise ReportError("a DTD is not allowed in a unit-tests report")


def parse_junit(data: bytes) -> list[TestCase]:
    """The tests of a JUnit/xUnit XML document, in document order; ``ReportError`` if unusable.

    Reads both families pytest writes (xunit1 and xunit2), a ``<testsuites>`` root or a bare
    ``<testsuite>``, nested suites, and skipped tests.
    """
    if len(data) > MAX_XML_BYTES:
        raise ReportError(f"the report is {len(data)} bytes, more than {MAX_XML_BYTES}")
    # S314: expat resolves no external entities and _NoDoctype refuses DTDs, hence entities.
    parser = XMLParser(target=_NoDoctype())  # noqa: S314
    try:
        parser.feed(data)
        root = parser.close()
    except ParseError as exc:
        line, column = exc.position
        raise ReportError(f"not well-formed XML at line {line}, column {column}") from exc
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"the root element is <{root.tag}>, not <testsuites> or <testsuite>")
    cases = [_case(element) for element in root.iter("testcase")]
    if len(cases) > MAX_TESTS:
        raise ReportError(f"{len(cases)} tests is more than {MAX_TESTS}")
    return cases


def _case(element: Element) -> TestCase:
    name = _cap(element.get("name", ""), NAME_CAP)
    case: TestCase = {
        "name": name or "(unnamed test)",
        "classname": _cap(element.get("classname", ""), NAME_CAP),
        "status": "ok",
        "time": _seconds(element.get("time")),
    }
    # The grader's reader ranks them the same way: an error hides a failure hides a skip.
    for tag, status, key in (
        ("error", "error", "error"),
        ("failure", "failure", "failure"),
        ("skipped", "skipped", "message"),
    ):
        found = element.find(tag)
        if found is not None:
            case["status"] = status
            text = _text_of(found)
            if text:  # the same shape validate_report gives: no empty texts
                case[key] = _cap(text, MESSAGE_CAP)
            break
    return case


def _text_of(element: Element) -> str:
    message = element.get("message", "")
    body = (element.text or "").strip()
    if message and body and not body.startswith(message):
        return f"{message}\n{body}"
    return body or message


def _seconds(raw: str | None) -> float:
    try:
        value = float((raw or "0").replace(",", ""))
    except ValueError:
        return 0.0
    return round(value, 6) if math.isfinite(value) and value >= 0 else 0.0


def _cap(text: str, limit: int) -> str:
    clean = text.encode("utf-8", "replace").decode("utf-8")
    # The marker fits inside the limit, so capping twice changes nothing.
    return clean if len(clean) <= limit else clean[: limit - len(TRUNCATED)] + TRUNCATED


def summarize(cases: list[TestCase]) -> Result:
    """OK when every counted test is ok, else FAIL; score = percentage of counted tests ok.

    Skipped tests count for neither side; a report with nothing to count is FAIL, score 0.
    """
    counted = [case for case in cases if case["status"] != "skipped"]
    if not counted:
        return {"status": "FAIL", "score": 0.0, "reason": "the unit-tests report has no tests"}
    passed = sum(1 for case in counted if case["status"] == "ok")
    score = round(100.0 * passed / len(counted), 2)
    return {"status": "OK" if passed == len(counted) else "FAIL", "score": score, "reason": None}


def validate_report(value: Any) -> list[TestCase]:
    """A tests report (parsed JSON) checked and rebuilt from known fields only.

    The report crosses the sandbox boundary: anything but an array of test objects with
    a name and a known status is a ``ReportError`` naming the item at fault.
    """
    if not isinstance(value, list):
        raise ReportError("the tests report is not a JSON array")
    if len(value) > MAX_TESTS:
        raise ReportError(f"the tests report has {len(value)} tests, more than {MAX_TESTS}")
    return [_checked_case(item, number) for number, item in enumerate(value, start=1)]


def _checked_case(item: Any, number: int) -> TestCase:
    where = f"tests report item {number}"
    if not isinstance(item, dict):
        raise ReportError(f"{where} is not an object")
    name, status = item.get("name"), item.get("status")
    if not isinstance(name, str) or not name:
        raise ReportError(f"{where} has no name")
    if status not in REPORT_STATUSES:
        raise ReportError(f"{where} ({_cap(name, 80)}): status {status!r} is not ok|failure|error")
    classname, seconds = item.get("classname", ""), item.get("time", 0.0)
    if not isinstance(classname, str):
        raise ReportError(f"{where} ({_cap(name, 80)}): classname is not a string")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ReportError(f"{where} ({_cap(name, 80)}): time is not a number")
    case: TestCase = {
        "name": _cap(name, NAME_CAP),
        "classname": _cap(classname, NAME_CAP),
        "status": status,
        "time": float(seconds) if math.isfinite(seconds) and seconds >= 0 else 0.0,
    }
    for key in ("failure", "error", "message"):
        text = item.get(key)
        if text is not None and not isinstance(text, str):
            raise ReportError(f"{where} ({_cap(name, 80)}): {key} is not a string")
        if text:
            case[key] = _cap(text, MESSAGE_CAP)
    return case


def evaluate_xml(data: bytes | None) -> tuple[list[TestCase] | None, Result]:
    """The tests report and the result for the XML bytes (``None``: there was no XML)."""
    if data is None:
        return None, _failed("no unit-tests report was written")
    try:
        cases = parse_junit(data)
    except ReportError as exc:
        return None, _failed(f"the unit-tests report is unreadable: {exc}")
    return cases, summarize(cases)


def _failed(reason: str) -> Result:
    return {"status": "FAIL", "score": 0.0, "reason": reason}


# The command (I/O) -------------------------------------------------------------------------


def _env_path(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"se_utils_cli: ${name} is not set (run inside a stage)")
    return value


def _read_capped(path: str) -> bytes | None:
    """The file's bytes, ``None`` if missing; refuses links, devices and oversized files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReportError(f"cannot open it: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as stream:
        # O_NONBLOCK and this check: a FIFO or device planted there cannot make us hang.
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ReportError("it is not a regular file")
        data = stream.read(MAX_XML_BYTES + 1)
    if len(data) > MAX_XML_BYTES:
        raise ReportError(f"it is more than {MAX_XML_BYTES} bytes")
    return data


def _write_json(path: str, value: Any, uid: int | None = None) -> None:
    """Write atomically, so a reader never sees half a file, and never through a link
    planted at the temporary's name; owned by ``uid`` when given (the engine writing
    into a folder a sandbox uid owns)."""
    temporary = Path(f"{path}.tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump(value, stream, ensure_ascii=False, indent=1)
        if uid is not None:
            os.fchown(stream.fileno(), uid, uid)
    temporary.replace(path)


def _read_result(path: str) -> Result:
    try:
        data = _read_capped(path)
        loaded = json.loads(data) if data else {}
    except (ReportError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def command_evaluate() -> int:
    """``se_utils_cli evaluate``: 0 when a report was written, 1 when the XML was unusable."""
    code, said, complaint = evaluate_files(
        _env_path("SE_PATH_UNIT_TESTS_REPORT"),
        _env_path("SE_PATH_FINAL_TESTS_REPORT"),
        _env_path("SE_PATH_SCENARIO_RESULT"),
    )
    print(said, end="")
    print(complaint, end="", file=sys.stderr)
    return code


def evaluate_files(
    source: str, report: str, result_path: str, *, uid: int | None = None
) -> tuple[int, str, str]:
    """``se_utils_cli evaluate`` on these paths: the tests report and the result written
    (owned by ``uid`` when given); returns its exit code and what it says on stdout and
    on stderr (the engine calls this itself for a test stage that is exactly that
    command)."""
    try:
        cases, result = evaluate_xml(_read_capped(source))
    except ReportError as exc:
        cases, result = None, _failed(f"the unit-tests report is unreadable: {exc}")
    said = complaint = ""
    if cases is not None:
        _write_json(report, cases, uid)
        counted = [case for case in cases if case["status"] != "skipped"]
        passed = sum(1 for case in counted if case["status"] == "ok")
        score = result["score"]
        said = f"se_utils_cli evaluate: {passed} of {len(counted)} tests ok, score {score}\n"
    else:
        complaint = f"se_utils_cli evaluate: {result['reason']}\n"
    _write_json(result_path, result, uid)
    return (0 if cases is not None else 1), said, complaint


def command_status(abbreviation: str) -> int:
    """``se_utils_cli scenario_result status X``: set the status, keep the recorded score."""
    if abbreviation not in STATUS_CODES:
        choices = "|".join(STATUS_CODES)
        print(f"se_utils_cli: unknown status {abbreviation!r} (use {choices})", file=sys.stderr)
        return 2
    path = _env_path("SE_PATH_SCENARIO_RESULT")
    result = _read_result(path)
    result["status"] = abbreviation
    _write_json(path, result)
    return 0


USAGE = "usage: se_utils_cli evaluate | se_utils_cli scenario_result status <BE|RE|TLE|FAIL|OK>"


def main(argv: list[str]) -> int:
    """Dispatch the toolkit's subcommands; 2 on a usage error."""
    if argv == ["evaluate"]:
        return command_evaluate()
    if len(argv) == 3 and argv[:2] == ["scenario_result", "status"]:
        return command_status(argv[2])
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
