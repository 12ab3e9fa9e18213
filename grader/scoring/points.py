"""Test points: which rule of ``assignment.tests`` prices each test. Pure functions only.

The rules (``[assignments.X.tests]`` in course.toml):

* A rule's pattern is compared with the test's name and with ``classname.name``.
* A rule without glob characters that equals the name wins over every glob.
* Otherwise the *first* matching glob, in the order written in course.toml, prices the
  test; a test is always counted once, never by every glob that matches it.
* A passing test earns its points; a failure, error or skip earns 0.
* A test no rule matches is worth 0 (shown, and listed in the instructor's warnings).
* A test the project defines (``defined``: the names its local files define) that the
  report does not list, and that a rule prices, is a "did not run" entry worth its
  rule's points: a glob rule stands for the very tests it matches, so a build error in
  an assignment priced by ``test_public_*`` lists each public test, never the glob.
* A rule that still matches nothing is one "did not run" entry named by its pattern:
  for an exact rule, that test; for a glob whose tests are unknown here (a project that
  lives only on the cloud service), a placeholder (``is_placeholder``) that readers show
  as the rule it is, never as one test.

Points are absolute: they are not scaled to ``max_points``. When the points a report
could earn do not add up to ``max_points``, the instructor gets a warning; raw points
above ``max_points`` are capped (so extra tests can act as a bonus up to full marks).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from grader.config import TestRule, Visibility
from grader.records import TestOutcome, TestScore

GLOB_CHARACTERS = frozenset("*?[")
DETAILS_CAP = 4_000  # characters of a test's output kept in the grade


@dataclass(frozen=True)
class PricedTests:
    """Every test with its points, plus what the instructor should know."""

    tests: tuple[TestScore, ...]
    warnings: tuple[str, ...]


def is_glob(pattern: str) -> bool:
    """Whether a rule pattern is a glob rather than one exact test name."""
    return any(ch in GLOB_CHARACTERS for ch in pattern)


def rule_for(test: TestOutcome, rules: Sequence[TestRule]) -> TestRule | None:
    """The rule that prices ``test``: an exact name first, then the first matching glob."""
    names = _names(test)
    for rule in rules:
        if rule.pattern in names:
            return rule
    for rule in rules:
        if is_glob(rule.pattern) and any(fnmatchcase(n, rule.pattern) for n in names):
            return rule
    return None


def is_placeholder(test: TestScore) -> bool:
    """A glob rule that matched no known test: it stands for tests whose names are unknown."""
    return test.status == "did not run" and is_glob(test.name)


def price_tests(
    tests: Sequence[TestOutcome], rules: Sequence[TestRule], defined: Collection[str] = ()
) -> PricedTests:
    """Apply the rules to a report's tests; add the defined tests and rules it lacks."""
    scored: list[TestScore] = []
    used: dict[str, int] = {}
    unmatched: list[str] = []
    for test in tests:
        rule = rule_for(test, rules)
        if rule is None:
            unmatched.append(test.name)
            scored.append(_score(test, 0.0, test.visibility or "visible"))
            continue
        used[rule.pattern] = used.get(rule.pattern, 0) + 1
        scored.append(_score(test, rule.points, rule.visibility))
    listed = {name for test in tests for name in (test.name, _base(test.name))}
    for name in sorted(set(defined) - listed):
        rule = rule_for(TestOutcome(name), rules)
        if rule is not None:
            used[rule.pattern] = used.get(rule.pattern, 0) + 1
            scored.append(TestScore(name, "did not run", rule.points, 0.0, rule.visibility))
    scored.extend(
        TestScore(rule.pattern, "did not run", rule.points, 0.0, rule.visibility)
        for rule in rules
        if rule.pattern not in used
    )
    warnings = []
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (", ..." if len(unmatched) > 5 else "")
        warnings.append(f"{len(unmatched)} test(s) match no rule and are worth 0: {shown}")
    repeated = [p for p, n in used.items() if n > 1 and not is_glob(p)]
    if repeated:
        warnings.append(f"exact rule(s) matched several tests, each counted: {', '.join(repeated)}")
    return PricedTests(tuple(scored), tuple(warnings))


def test_score(
    test: TestOutcome, *, possible: float, earned: float, visibility: Visibility
) -> TestScore:
    """A report's test with the points it was worth and earned."""
    return TestScore(
        name=test.name,
        status=test.status,
        points_possible=possible,
        points_earned=earned,
        visibility=visibility,
        classname=test.classname,
        message=test.message or _first_line(test.output),
        details=test.output[:DETAILS_CAP],
        time=test.time,
    )


def _score(test: TestOutcome, points: float, visibility: Visibility) -> TestScore:
    earned = points if test.status == "ok" else 0.0
    return test_score(test, possible=points, earned=earned, visibility=visibility)


def _names(test: TestOutcome) -> tuple[str, ...]:
    if test.classname:
        return (test.name, f"{test.classname}.{test.name}")
    return (test.name,)


def _base(name: str) -> str:
    """A parametrized case's test (``test_x[1]`` -> ``test_x``)."""
    return name.split("[", 1)[0] if name.endswith("]") else name


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0] if text else ""
