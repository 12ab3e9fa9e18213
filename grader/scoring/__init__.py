"""Tests report -> points: report formats, test weights, late policy, the grade.

``parse_tests_report`` reads a report and raises ``TestReportError`` (a StudentError)
when it cannot: the caller records that student as "not graded" (an unreadable report
comes from the engine or the project, so it is no grade) and the run goes on.
``grade_submission`` scores the parsed tests.
"""

from __future__ import annotations

from grader.scoring.grade import grade_submission, round_points
from grader.scoring.late import describe_lateness, late_penalty, started_days
from grader.scoring.points import price_tests, rule_for
from grader.scoring.testreport import detect_format, parse_tests_report

__all__ = [
    "describe_lateness",
    "detect_format",
    "grade_submission",
    "late_penalty",
    "parse_tests_report",
    "price_tests",
    "round_points",
    "rule_for",
    "started_days",
]
