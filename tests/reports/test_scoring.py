"""Scoring: test points, engine score, late policy; checked against the sample course."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.config import Assignment, LatePolicy, LateTier, TestRule, load_course
from grader.records import TestOutcome, TestStatus
from grader.scoring import (
    describe_lateness,
    grade_submission,
    late_penalty,
    round_points,
    rule_for,
    started_days,
)
from grader.scoring.points import is_placeholder, price_tests

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
BASE = Assignment(
    id="hw",
    title="Homework",
    project="hw",
    deadline=datetime(2026, 10, 1, 23, 59, tzinfo=UTC),
    repo="repos/{student_id}",
    max_points=100,
)
ON_TIME = timedelta()


@pytest.fixture(scope="module")
def sample() -> dict[str, Assignment]:
    return dict(load_course(SAMPLE).assignments)


def report(assignment: Assignment, failing: set[str]) -> list[TestOutcome]:
    """Every test an exact-name rule names, failing the given ones."""
    return [
        TestOutcome(r.pattern, "tests", "failure" if r.pattern in failing else "ok")
        for r in assignment.tests
    ]


HW2_TESTS = [
    "test_public_addition",
    "test_public_mixed_expression",
    "test_hidden_negative_numbers",
    "test_hidden_division_truncates_toward_zero",
    "test_hidden_stack_underflow",
    "test_hidden_too_many_operands",
    "test_hidden_division_by_zero",
    "test_hidden_several_lines_and_blank_lines",
]


@pytest.mark.parametrize(
    ("failing", "raw"),
    [
        (set(), 100),
        (
            {
                "test_hidden_word_count_punctuation",
                "test_hidden_top_words_ties_alphabetical",
                "test_hidden_average_word_length_empty",
            },
            65,  # bchen
        ),
        ({"test_hidden_top_words_ties_alphabetical"}, 85),  # erivera
        (
            {
                "test_public_average_word_length_simple",
                "test_hidden_average_word_length_empty",
                "test_hidden_average_word_length_rounding",
            },
            75,  # hpatel
        ),
    ],
)
def test_sample_hw1_points_per_test_name(
    sample: dict[str, Assignment], failing: set[str], raw: float
) -> None:
    hw1 = sample["hw1"]
    grade = grade_submission(report(hw1, failing), hw1, engine_score=None, lateness=ON_TIME)
    assert (grade.raw_points, grade.score, grade.max_score) == (raw, raw, 100)
    assert grade.basis == "test points"
    assert grade.warnings == ()


@pytest.mark.parametrize(
    ("failing", "score"),
    [
        (set(), 100),
        (set(HW2_TESTS[2:6]), 60),  # bchen
        ({"test_hidden_several_lines_and_blank_lines"}, 90),  # gmueller
    ],
)
def test_sample_hw2_points_per_glob(
    sample: dict[str, Assignment], failing: set[str], score: float
) -> None:
    hw2 = sample["hw2"]
    tests = [TestOutcome(n, "t", "failure" if n in failing else "ok") for n in HW2_TESTS]
    grade = grade_submission(tests, hw2, engine_score=None, lateness=ON_TIME)
    assert grade.score == score
    hidden = [t for t in grade.tests if t.name.startswith("test_hidden_")]
    assert {t.visibility for t in hidden} == {"hidden"}
    assert {t.points_possible for t in hidden} == {10}


@pytest.mark.parametrize(
    ("assignment", "lateness", "raw", "days", "penalty", "score"),
    [
        ("hw1", timedelta(days=1, hours=6, minutes=1), 100, 2, 20, 80),  # gmueller
        ("hw2", timedelta(days=2, hours=2, minutes=1), 100, 3, 30, 70),  # dnovak
        ("hw2", timedelta(minutes=10), 100, 0, 0, 100),  # fsato, inside the grace
    ],
)
def test_sample_late_penalties(
    sample: dict[str, Assignment],
    assignment: str,
    lateness: timedelta,
    raw: float,
    days: int,
    penalty: float,
    score: float,
) -> None:
    a = sample[assignment]
    tests = report(a, set()) if assignment == "hw1" else [TestOutcome(n) for n in HW2_TESTS]
    grade = grade_submission(tests, a, engine_score=None, lateness=lateness)
    assert (grade.raw_points, grade.late_days, grade.penalty_points, grade.score) == (
        raw,
        days,
        penalty,
        score,
    )


def test_build_error_without_report_is_a_zero_grade_with_every_rule_not_run(
    sample: dict[str, Assignment],
) -> None:
    grade = grade_submission([], sample["hw2"], engine_score=0.0, lateness=ON_TIME)
    assert (grade.score, grade.max_score) == (0, 100)
    assert [(t.name, t.status, t.points_possible, t.visibility) for t in grade.tests] == [
        ("test_public_*", "did not run", 20, "visible"),
        ("test_hidden_*", "did not run", 10, "hidden"),
    ]
    assert grade.warnings == ()  # a missing report is not a configuration problem


def test_exact_names_win_over_globs_and_the_first_glob_wins_over_later_ones() -> None:
    rules = (TestRule("test_*", 1), TestRule("test_a*", 3), TestRule("test_ab", 5))
    assert rule_for(TestOutcome("test_ab"), rules) == rules[2]
    assert rule_for(TestOutcome("test_ac"), rules) == rules[0]
    assert rule_for(TestOutcome("check"), rules) is None


def test_rules_also_match_the_qualified_name() -> None:
    rules = (TestRule("TestParser.test_*", 2), TestRule("tests.test_io.test_read", 4))
    assert rule_for(TestOutcome("test_x", "TestParser"), rules) == rules[0]
    assert rule_for(TestOutcome("test_read", "tests.test_io"), rules) == rules[1]
    assert rule_for(TestOutcome("test_read", "tests.test_other"), rules) is None


def test_a_test_matching_several_globs_counts_once() -> None:
    a = replace(BASE, max_points=10, tests=(TestRule("test_*", 4), TestRule("*_slow", 6)))
    grade = grade_submission([TestOutcome("test_big_slow")], a, engine_score=None, lateness=ON_TIME)
    assert grade.raw_points == 4
    assert [(t.name, t.status) for t in grade.tests] == [
        ("test_big_slow", "ok"),
        ("*_slow", "did not run"),
    ]


def test_unpriced_tests_are_worth_nothing_and_warn_the_instructor() -> None:
    a = replace(BASE, max_points=10, tests=(TestRule("test_a", 10),))
    grade = grade_submission(
        [TestOutcome("test_a"), TestOutcome("test_extra")], a, engine_score=None, lateness=ON_TIME
    )
    assert grade.score == 10
    assert grade.warnings == ("1 test(s) match no rule and are worth 0: test_extra",)


def test_points_that_do_not_add_up_are_not_scaled_but_warned_about() -> None:
    a = replace(BASE, max_points=100, tests=(TestRule("test_*", 10),))
    tests = [TestOutcome(f"test_{i}") for i in range(5)]
    grade = grade_submission(tests, a, engine_score=None, lateness=ON_TIME)
    assert grade.score == 50
    assert "worth 50 points but max_points is 100" in grade.warnings[0]


def test_points_above_max_are_capped() -> None:
    a = replace(BASE, max_points=10, tests=(TestRule("test_*", 4),))
    grade = grade_submission(
        [TestOutcome(f"test_{i}") for i in range(4)], a, engine_score=None, lateness=ON_TIME
    )
    assert (grade.raw_points, grade.score) == (10, 10)


def test_skipped_failed_and_errored_tests_earn_nothing() -> None:
    a = replace(BASE, max_points=4, tests=(TestRule("t*", 1),))
    statuses: tuple[TestStatus, ...] = ("ok", "failure", "error", "skipped")
    tests = [TestOutcome(f"t{i}", status=s) for i, s in enumerate(statuses)]
    grade = grade_submission(tests, a, engine_score=None, lateness=ON_TIME)
    assert [t.points_earned for t in grade.tests] == [1, 0, 0, 0]


def test_without_rules_the_engine_score_is_a_percentage_scaled_to_max_points() -> None:
    a = replace(BASE, max_points=20)
    grade = grade_submission([TestOutcome("t")], a, engine_score=65.0, lateness=ON_TIME)
    assert (grade.score, grade.basis) == (13, "engine score")
    assert [t.points_possible for t in grade.tests] == [0]
    over = grade_submission([], a, engine_score=250.0, lateness=ON_TIME)
    assert over.score == 20


def test_without_rules_or_engine_score_the_share_of_tests_passed_counts() -> None:
    a = replace(BASE, max_points=10)
    tests = [TestOutcome("a"), TestOutcome("b", status="failure"), TestOutcome("c")]
    grade = grade_submission(tests, a, engine_score=None, lateness=ON_TIME)
    assert (grade.score, grade.basis) == (6.67, "tests passed")
    nothing = grade_submission([], a, engine_score=None, lateness=ON_TIME)
    assert (nothing.score, nothing.basis) == (0, "no result")


def test_gradescope_points_count_when_the_course_gives_none() -> None:
    a = replace(BASE, max_points=10)
    tests = [
        TestOutcome("a", points=3, max_points=3),
        TestOutcome("b", status="failure", points=1, max_points=4, visibility="hidden"),
    ]
    grade = grade_submission(tests, a, engine_score=99.0, lateness=ON_TIME)
    assert (grade.score, grade.basis) == (4, "report points")
    assert [(t.points_earned, t.points_possible, t.visibility) for t in grade.tests] == [
        (3, 3, "visible"),
        (1, 4, "hidden"),
    ]


def test_scores_are_rounded_to_hundredths_half_up() -> None:
    assert round_points(2.675) == 2.68
    assert round_points(0.1 + 0.2) == 0.3
    assert str(round_points(-0.001)) == "0.0"
    a = replace(BASE, max_points=10, late=LatePolicy(percent_per_day=33.333, max_days=3))
    grade = grade_submission([], a, engine_score=100 / 3, lateness=timedelta(hours=1))
    assert (grade.raw_points, grade.penalty_points, grade.score) == (3.33, 1.11, 2.22)


# Late policy -------------------------------------------------------------------------

PER_DAY = LatePolicy(grace_minutes=15, percent_per_day=10, max_days=3)


@pytest.mark.parametrize(
    ("lateness", "days", "percent"),
    [
        (timedelta(), 0, 0),
        (timedelta(minutes=15), 0, 0),
        (timedelta(minutes=15, seconds=1), 1, 10),
        (timedelta(days=1), 1, 10),
        (timedelta(days=1, seconds=1), 2, 20),
        (timedelta(days=3, minutes=10), 3, 30),  # charged days never exceed max_days
        (timedelta(days=3, minutes=16), 4, 100),  # past the whole window: not acceptable
    ],
)
def test_percent_per_started_day(lateness: timedelta, days: int, percent: float) -> None:
    penalty = late_penalty(lateness, PER_DAY)
    assert (penalty.days, penalty.percent) == (days, percent)


def test_late_reason_says_why_in_plain_words() -> None:
    assert late_penalty(timedelta(days=1, hours=6, minutes=1), PER_DAY).reason == (
        "1 d 6 h 1 min late: 2 started days x 10% = 20% off"
    )
    assert late_penalty(timedelta(minutes=10), PER_DAY).reason == (
        "10 min late, within the 15-minute grace period"
    )
    assert late_penalty(timedelta(), PER_DAY).reason == "on time"


TIERS = LatePolicy(
    grace_minutes=0,
    tiers=(LateTier(1, 10), LateTier(2, 5), LateTier(4, 50)),
    max_days=7,
)


@pytest.mark.parametrize(
    ("lateness", "percent"),
    [
        (timedelta(hours=3), 10),
        (timedelta(days=1), 10),
        (timedelta(days=1, hours=1), 10),  # a lower later step never lowers the penalty
        (timedelta(days=3), 50),
        (timedelta(days=6), 50),  # past the table: its last step
    ],
)
def test_tiered_table(lateness: timedelta, percent: float) -> None:
    assert late_penalty(lateness, TIERS).percent == percent


def test_lateness_is_described_largest_unit_first() -> None:
    assert describe_lateness(timedelta(days=2, hours=2, minutes=1)) == "2 d 2 h 1 min"
    assert describe_lateness(timedelta(seconds=45)) == "45 s"
    assert started_days(timedelta(minutes=1)) == 1


# Invariants --------------------------------------------------------------------------

POLICIES = st.builds(
    LatePolicy,
    grace_minutes=st.floats(0, 120),
    percent_per_day=st.floats(0, 60),
    max_days=st.floats(0, 10),
) | st.builds(
    LatePolicy,
    grace_minutes=st.floats(0, 120),
    tiers=st.lists(st.builds(LateTier, st.floats(0.1, 10), st.floats(0, 100)), max_size=4).map(
        tuple
    ),
    max_days=st.floats(0, 10),
)
LATENESS = st.timedeltas(min_value=timedelta(), max_value=timedelta(days=12))
TESTS = st.lists(
    st.builds(
        TestOutcome,
        name=st.sampled_from(["test_a", "test_b", "test_c", "other", "t_x"]),
        status=st.sampled_from(["ok", "failure", "error", "skipped"]),
    ),
    max_size=8,
)
RULES = st.lists(
    st.builds(
        TestRule,
        pattern=st.sampled_from(["test_a", "test_*", "t*", "*", "other", "none"]),
        points=st.floats(0, 50),
        visibility=st.sampled_from(["visible", "hidden", "after_due_date"]),
    ),
    max_size=4,
    unique_by=lambda r: r.pattern,
).map(tuple)


@given(
    tests=TESTS,
    rules=RULES,
    policy=POLICIES,
    lateness=LATENESS,
    max_points=st.floats(0, 1000),
    engine_score=st.none() | st.floats(-50, 200),
)
def test_score_is_between_zero_and_raw_points_and_raw_points_at_most_max(
    tests: list[TestOutcome],
    rules: tuple[TestRule, ...],
    policy: LatePolicy,
    lateness: timedelta,
    max_points: float,
    engine_score: float | None,
) -> None:
    a = replace(BASE, max_points=max_points, tests=rules, late=policy)
    grade = grade_submission(tests, a, engine_score=engine_score, lateness=lateness)
    assert 0 <= grade.score <= grade.raw_points <= grade.max_score
    assert grade.score == round_points(grade.raw_points - grade.penalty_points)
    assert 0 <= grade.late.percent <= 100
    for number in (grade.score, grade.raw_points, grade.penalty_points):
        assert number == round_points(number)  # never 99.99999
    patterns = {t.name for t in grade.tests if t.status == "did not run"}
    assert patterns <= {r.pattern for r in rules}


@given(tests=TESTS, rules=RULES, data=st.data())
def test_score_does_not_depend_on_report_order(
    tests: list[TestOutcome], rules: tuple[TestRule, ...], data: st.DataObject
) -> None:
    a = replace(BASE, tests=rules)
    shuffled = data.draw(st.permutations(tests))
    one = grade_submission(tests, a, engine_score=None, lateness=ON_TIME)
    two = grade_submission(shuffled, a, engine_score=None, lateness=ON_TIME)
    assert one.score == two.score


@given(policy=POLICIES, first=LATENESS, second=LATENESS)
def test_penalty_never_falls_as_lateness_grows(
    policy: LatePolicy, first: timedelta, second: timedelta
) -> None:
    early, late = sorted((first, second))
    assert late_penalty(early, policy).percent <= late_penalty(late, policy).percent
    a = replace(BASE, late=policy)
    tests = [TestOutcome("t")]
    early_grade = grade_submission(tests, a, engine_score=80.0, lateness=early)
    late_grade = grade_submission(tests, a, engine_score=80.0, lateness=late)
    assert late_grade.score <= early_grade.score


@given(policy=POLICIES, lateness=LATENESS)
def test_within_grace_costs_nothing(policy: LatePolicy, lateness: timedelta) -> None:
    if lateness <= timedelta(minutes=policy.grace_minutes):
        assert late_penalty(lateness, policy).percent == 0


def test_glob_rules_stand_for_the_defined_tests_a_report_lacks() -> None:
    rules = (TestRule("test_public_*", 20.0), TestRule("test_hidden_*", 10.0, "hidden"))
    defined = {"test_public_a", "test_public_b", "test_hidden_a", "test_hidden_b", "helper"}
    report = [TestOutcome("test_public_a[1]"), TestOutcome("test_public_a[2]", status="failure")]
    priced = price_tests(report, rules, defined)
    assert [(t.name, t.status, t.points_possible) for t in priced.tests] == [
        ("test_public_a[1]", "ok", 20.0),
        ("test_public_a[2]", "failure", 20.0),
        ("test_hidden_a", "did not run", 10.0),
        ("test_hidden_b", "did not run", 10.0),
        ("test_public_b", "did not run", 20.0),
    ]
    nothing = price_tests([], rules, ())
    assert [(t.name, t.status) for t in nothing.tests] == [
        ("test_public_*", "did not run"),
        ("test_hidden_*", "did not run"),
    ]
    assert all(is_placeholder(t) for t in nothing.tests)
    assert not any(is_placeholder(t) for t in priced.tests)
