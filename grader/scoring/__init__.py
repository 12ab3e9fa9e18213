"""Tests report -> points: report formats, test weights, late policy, the grade.

``parse_tests_report`` reads a report (raises ``TestReportError``); ``grade_submission``
scores parsed tests; ``grade_report`` does both and turns an unreadable report into a
note on the grade, so one bad report never stops a run.
"""

from __future__ import annotations

from grader.scoring.grade import grade_report, grade_submission, round_points
from grader.scoring.late import describe_lateness, late_penalty, started_days
from grader.scoring.points import price_tests, rule_for
from grader.scoring.testreport import detect_format, parse_tests_report

__all__ = [
    "describe_lateness",
    "detect_format",
    "grade_report",
    "grade_submission",
    "late_penalty",
    "parse_tests_report",
    "price_tests",
    "round_points",
    "rule_for",
    "started_days",
]
