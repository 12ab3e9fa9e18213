"""Integrity flags: where a submission's own evidence disagrees, the instructor should look.

A student who forges a tests report, kills the evaluator or smuggles files into the
instructor's folders leaves traces that disagree with the grade. Each flag is decided by
``integrity_flags`` from plain values (``Evidence``, which ``evidence_of`` collects from
the engine's answer):

* ``passed despite the run stage``: the run stage exited non-zero, was killed by a
  signal or ran past its time limit, yet the tests report says every test passed;
* ``no tests report``: the run stage ran and ended on its own, yet no tests report was
  written (the engine's debug log says so, or the stream is missing) although the
  assignment prices tests;
* ``files dropped``: files the student submitted at read-only paths (the instructor's
  folders) were dropped from the workspace;
* ``engine warning``: the engine's debug log has a line starting ``warning:``;
* ``duplicate tests``: the report names the same test more than once;
* ``unknown tests``: the report names tests the project does not define while tests
  the project defines are missing from it.

Flags are stored with the outcome (``StudentOutcome.flags``) and shown on the
instructor's page, in the dashboard's "needs a look" list and in the gradebook's
``flags`` column; never in anything a student reads.

Three of them need the engine's debug log, one more HTTP request per submission. The
pipeline asks ``wants_debug_log``, which keeps the normal case free: the log is fetched
when the result is not a plain pass or fail (as always), when what the submission
record shows already disagrees (the run stage failed yet all passed; the project's test
stage ran yet wrote no report), for the first clean-looking result of each project in a
run, and afterwards only when a log is longer than the shortest clean log of that project
by more than ``DEBUG_LOG_SLACK`` bytes (a clean log differs by a few bytes of times,
exit codes and score; every line a flag looks for is longer than that). A fetched log
that says nothing (``clean_debug_size``) is not kept, so what a run stores never
depends on which submission finished first. A project without a test stage writes no
report at all: its results are plain ones, measured like the others.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from grader.api.models import StatusCode, Submission
from grader.records import IntegrityFlag, TestOutcome

PASSED_DESPITE_RUN = "passed despite the run stage"
NO_REPORT = "no tests report"
FILES_DROPPED = "files dropped"
ENGINE_WARNING = "engine warning"
DUPLICATE_TESTS = "duplicate tests"
UNKNOWN_TESTS = "unknown tests"
FLAG_KINDS = (
    PASSED_DESPITE_RUN,
    NO_REPORT,
    FILES_DROPPED,
    ENGINE_WARNING,
    DUPLICATE_TESTS,
    UNKNOWN_TESTS,
)

RUN_STAGE = "run"
TEST_STAGE = "test"  # where a project writes its tests report
NO_REPORT_LINE = "no unit-tests report was written"  # what the engine's evaluator says
DEBUG_LOG_SLACK = 32  # bytes a clean debug log may exceed the shortest clean one by
LISTED = 5  # names shown in one reason
LINE_CHARS = 200  # of one warning line in a reason

_DROPPED_FILE = re.compile(r"^workspace: submitted file (?P<path>.+?) dropped\b")
_DROPPED_MORE = re.compile(r"^workspace: (?P<count>\d+) more submitted files .*\bdropped\b")
_DROPPED_OTHER = re.compile(r"^workspace: .*\bdropped\b")
_WARNING = re.compile(r"^\s*warning:", re.IGNORECASE)
_PARAMETERS = re.compile(r"\[.*\]\Z")


@dataclass(frozen=True)
class Evidence:
    """What one submission's engine answer says, as plain values.

    ``defined`` are the test names the project defines (empty: not known, so the
    ``unknown tests`` check is skipped); ``tests`` are the report's tests, in order.
    """

    run_ran: bool = False
    run_exit_code: int | None = None
    run_signal: int | None = None
    timed_out: bool = False
    report_written: bool = True
    report_expected: bool = True
    tests: tuple[TestOutcome, ...] = ()
    defined: frozenset[str] = frozenset()
    debug_log: str = ""


def evidence_of(
    submission: Submission,
    tests: Sequence[TestOutcome],
    *,
    report_text: str,
    debug_log: str,
    defined: frozenset[str] = frozenset(),
    report_expected: bool = True,
) -> Evidence:
    """The evidence in an engine answer, its tests report and its debug log."""
    run = submission.stages.get(RUN_STAGE)
    ran = run is not None and not run.skipped
    return Evidence(
        run_ran=ran,
        run_exit_code=run.exit_code if run is not None and ran else None,
        run_signal=run.signal if run is not None and ran and run.signal else None,
        timed_out=submission.result.status.code == StatusCode.TIME_LIMIT,
        report_written=bool(report_text.strip()) and NO_REPORT_LINE not in debug_log,
        report_expected=report_expected,
        tests=tuple(tests),
        defined=defined,
        debug_log=debug_log,
    )


def integrity_flags(evidence: Evidence) -> tuple[IntegrityFlag, ...]:
    """Every flag the evidence raises, in the order of ``FLAG_KINDS``."""
    found = [
        _passed_despite_run(evidence),
        _no_report(evidence),
        *debug_log_flags(evidence.debug_log),
        _duplicates(evidence.tests),
        _unknown(evidence.tests, evidence.defined),
    ]
    return tuple(flag for flag in found if flag is not None)


def debug_log_flags(debug_log: str) -> tuple[IntegrityFlag, ...]:
    """The flags the engine's debug log raises by itself: dropped files, warnings."""
    lines = debug_log.splitlines()
    found = [_dropped(lines), _warnings(lines)]
    return tuple(flag for flag in found if flag is not None)


def wants_debug_log(submission: Submission, *, clean_size: int | None) -> bool:
    """Whether to fetch a final submission's debug log (see the module docstring).

    ``clean_size`` is the shortest debug log of the same project in this run that raised
    no flag (None: none seen yet).
    """
    ref = submission.streams.get("debug_log")
    if ref is None or ref.size == 0:
        return False
    if _unusual(submission):
        return True
    return clean_size is None or ref.size > clean_size + DEBUG_LOG_SLACK


def clean_debug_size(submission: Submission, debug_log: str) -> int | None:
    """The size of a fetched debug log that says nothing, else None.

    Such a log (a plain pass or fail, nothing disagreeing, no flag in the log) becomes
    the project's ``clean_size`` and is not kept: whether it was fetched depends on
    which submission finished first, and what is stored must not.
    """
    ref = submission.streams.get("debug_log")
    if ref is None or _unusual(submission):
        return None
    if debug_log_flags(debug_log) or NO_REPORT_LINE in debug_log:
        return None
    return ref.size


def _unusual(submission: Submission) -> bool:
    """Not a plain pass or fail, or the submission record already disagrees with itself."""
    code = submission.result.status.code
    if code not in (StatusCode.FAIL, StatusCode.OK):
        return True
    run = submission.stages.get(RUN_STAGE)
    if run is None or run.skipped:
        return False
    report = submission.streams.get("tests_report")
    if (report is None or report.size == 0) and _ran(submission, TEST_STAGE):
        return True  # the project's test stage ran, yet no report came of it
    return code == StatusCode.OK and _ended_early(run.exit_code, run.signal)


def _ran(submission: Submission, stage: str) -> bool:
    found = submission.stages.get(stage)
    return found is not None and not found.skipped


def _ended_early(exit_code: int | None, signal: int | None) -> bool:
    return bool(signal) or (exit_code or 0) != 0


def _passed_despite_run(evidence: Evidence) -> IntegrityFlag | None:
    if not evidence.run_ran:
        return None
    early = evidence.timed_out or _ended_early(evidence.run_exit_code, evidence.run_signal)
    counted = [t for t in evidence.tests if t.status != "skipped"]
    if not early or not counted or any(t.status != "ok" for t in counted):
        return None
    if evidence.timed_out:
        how = "the run stage ran past its time limit"
    elif evidence.run_signal:
        how = f"the run stage was killed by signal {evidence.run_signal}"
    else:
        how = f"the run stage exited with code {evidence.run_exit_code}"
    return IntegrityFlag(
        PASSED_DESPITE_RUN, f"{how}, but the tests report says all {len(counted)} tests passed"
    )


def _no_report(evidence: Evidence) -> IntegrityFlag | None:
    said = NO_REPORT_LINE in evidence.debug_log
    if not evidence.run_ran or evidence.report_written or not (evidence.report_expected or said):
        return None
    if evidence.timed_out or evidence.run_signal:
        return None  # a killed run stage explains a missing report
    code = evidence.run_exit_code
    how = "ended" if code is None else f"exited with code {code}"
    return IntegrityFlag(NO_REPORT, f"the run stage {how}, but no tests report was written")


def _dropped(lines: Iterable[str]) -> IntegrityFlag | None:
    paths: list[str] = []
    count = 0
    for line in lines:
        if match := _DROPPED_FILE.match(line):
            paths.append(match["path"])
            count += 1
        elif match := _DROPPED_MORE.match(line):
            count += int(match["count"])
        elif _DROPPED_OTHER.match(line):
            count += 1
    if not count:
        return None
    shown = f": {_listed(paths, count)}" if paths else ""
    return IntegrityFlag(
        FILES_DROPPED,
        f"{count} submitted file(s) at read-only paths were dropped from the workspace{shown}",
    )


def _warnings(lines: Iterable[str]) -> IntegrityFlag | None:
    warnings = [line.strip()[:LINE_CHARS] for line in lines if _WARNING.match(line)]
    if not warnings:
        return None
    shown = "; ".join(warnings[:LISTED])
    more = f" (and {len(warnings) - LISTED} more)" if len(warnings) > LISTED else ""
    return IntegrityFlag(ENGINE_WARNING, f"the engine's debug log warns: {shown}{more}")


def _duplicates(tests: Sequence[TestOutcome]) -> IntegrityFlag | None:
    counts = Counter((t.classname, t.name) for t in tests)
    repeated = [f"{name} ({n} times)" for (_, name), n in counts.items() if n > 1]
    if not repeated:
        return None
    return IntegrityFlag(
        DUPLICATE_TESTS,
        f"the tests report names {len(repeated)} test(s) more than once: "
        + _listed(repeated, len(repeated)),
    )


def _unknown(tests: Sequence[TestOutcome], defined: frozenset[str]) -> IntegrityFlag | None:
    if not defined or not tests:
        return None
    reported = {_PARAMETERS.sub("", t.name) for t in tests}
    unknown, missing = sorted(reported - defined), sorted(defined - reported)
    if not unknown or not missing:
        return None
    return IntegrityFlag(
        UNKNOWN_TESTS,
        f"the tests report names {len(unknown)} test(s) the project does not define "
        f"({_listed(unknown, len(unknown))}) and lacks {len(missing)} it does "
        f"({_listed(missing, len(missing))})",
    )


def _listed(names: Sequence[str], total: int) -> str:
    shown = ", ".join(names[:LISTED])
    return f"{shown}, ..." if total > len(names[:LISTED]) else shown
