"""The student-facing view of an outcome: the one door every text for students goes through.

``student_view(outcome, material)`` is pure: it returns a ``StudentView``, a copy of the
outcome in which

* every text a student could read (the reason, the commit reason, the build output, each
  test's name, message and details) is scrubbed of the assignment's hidden material
  (``grader.reports.hidden``): hidden lines become ``[hidden]``, hidden test names
  become the label the feedback gives them;
* each hidden test keeps its status, points and time, and is named by its label
  ("hidden test N") with no message or details (except the harness's own
  "timed out after N s", which names no part of the test);
* what is for the instructor only is left out: grading notes, integrity flags, the
  engine's debug log, the hidden test rules, and an override's reason unless the
  instructor let students see it (``--show-reason``).

Every renderer for students (feedback, manifests, LMS files, Gradescope results) takes
``StudentView`` values, never a ``StudentOutcome``: mypy refuses a new student renderer
that skips this door. The instructor's pages read the outcome itself.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

from grader.records import Grade, ScoreOverride, StudentOutcome, TestScore
from grader.reports.hidden import UNNUMBERED_LABEL, HiddenMaterial, scrub
from grader.scoring.points import is_placeholder

HIDDEN_LABEL = "hidden test {number}"
HIDDEN_RULE_LABEL = "every hidden test of a rule"  # a hidden glob that matched no known test
_PARAMETERS_OPEN = "["

_Clean = Callable[[str], str]


@dataclass(frozen=True)
class StudentView(StudentOutcome):
    """An outcome as a student may see it; made only by ``student_view``."""


def student_view(outcome: StudentOutcome, material: HiddenMaterial) -> StudentView:
    """``outcome`` scrubbed for its student (see the module docstring)."""
    grade = outcome.grade
    labels = hidden_labels(grade.tests) if grade else {}

    def clean(text: str) -> str:
        return scrub(text, material, labels)

    seen = replace(
        outcome,
        assignment=replace(
            outcome.assignment,
            tests=tuple(r for r in outcome.assignment.tests if r.visibility != "hidden"),
        ),
        reason=clean(outcome.reason),
        commit_reason=clean(outcome.commit_reason) if outcome.commit_reason else None,
        engine_status=clean(outcome.engine_status) if outcome.engine_status else None,
        grade=_grade_view(grade, labels, clean) if grade else None,
        build_output=clean(outcome.build_output),
        debug_log="",
        flags=(),
        override=_override_view(outcome.override, clean),
    )
    return StudentView(**{f.name: getattr(seen, f.name) for f in fields(StudentOutcome)})


def student_views(
    outcomes: Sequence[StudentOutcome], material: HiddenMaterial
) -> list[StudentView]:
    """``student_view`` of each outcome, in order."""
    return [student_view(o, material) for o in outcomes]


def hidden_labels(tests: Sequence[TestScore]) -> dict[str, str]:
    """What the student's feedback calls each hidden test: name -> "hidden test N".

    N counts the tests a student may not see by name (hidden, and shown only after the
    due date) in report order, so a label never changes when the due date passes. A
    parametrized test's bare name gets the label too when only one case has it.
    """
    labels: dict[str, str] = {}
    number = 0
    for test in tests:
        if test.visibility == "visible" or is_placeholder(test):
            continue
        number += 1
        if test.visibility == "hidden":
            labels.setdefault(test.name, HIDDEN_LABEL.format(number=number))
    bases = Counter(_base(name) for name in labels)
    for name, label in list(labels.items()):
        base = _base(name)
        if base != name and bases[base] == 1:
            labels.setdefault(base, label)
    return labels


def _override_view(override: ScoreOverride | None, clean: _Clean) -> ScoreOverride | None:
    """The override as the student may see it: its reason only when the instructor said so."""
    if override is None:
        return None
    return replace(override, reason=clean(override.reason) if override.show_reason else "")


def _grade_view(grade: Grade, labels: Mapping[str, str], clean: _Clean) -> Grade:
    tests = tuple(_test_view(t, labels, clean) for t in grade.tests)
    return replace(grade, tests=tests, warnings=())


def _test_view(test: TestScore, labels: Mapping[str, str], clean: _Clean) -> TestScore:
    if test.visibility == "hidden":
        label = HIDDEN_RULE_LABEL if is_placeholder(test) else labels.get(test.name)
        return TestScore(
            name=label or UNNUMBERED_LABEL,
            status=test.status,
            points_possible=test.points_possible,
            points_earned=test.points_earned,
            visibility="hidden",
            message=timeout_words(test.message),
            time=test.time,
        )
    return replace(
        test,
        name=clean(test.name),
        classname=clean(test.classname),
        message=clean(test.message),
        details=clean(test.details),
    )


_TIMEOUT = re.compile(r"(?:\w+: )?(timed out after [0-9.]+ s(?: \(the test's limit\))?)")


def timeout_words(message: str) -> str:
    """The harness's "timed out after N s" at the start of a test's message (after its
    exception's name, if any), alone: the limit is no secret, and whatever follows (the
    call) may quote a hidden test."""
    found = _TIMEOUT.match(message)
    return found.group(1) if found else ""


def _base(name: str) -> str:
    return name.split(_PARAMETERS_OPEN, 1)[0] if name.endswith("]") else name
