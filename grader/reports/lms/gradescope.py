"""Gradescope-style ``results.json``, one per graded student, for tools that read it.

The shape is Gradescope's autograder output: a top-level ``score`` (the final score,
late penalty included), ``max_score``, ``output``, and ``tests``, each with ``name``,
``score``, ``max_score``, ``status`` (``passed`` or ``failed``), ``visibility`` and
``output``. The file is written from the student's view: visible text is scrubbed of
hidden material, and a hidden test is listed with ``"visibility": "hidden"`` under its
label ("hidden test N"), with its score and status and no output (its name and message
are on the instructor's page). ``after_due_date`` tests keep their name: the consumer
hides them until the due date, as Gradescope does. A student not graded gets no file
(never a zero) and a stale file from an earlier export is removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grader.config import Assignment
from grader.records import Grade, TestScore
from grader.reports.excerpt import number_text
from grader.reports.lms.sheet import (
    IdentityProblem,
    LmsExport,
    LmsFormat,
    check_identities,
    graded,
    not_graded_ids,
)
from grader.reports.student_view import HIDDEN_RULE_LABEL, StudentView
from grader.roster import id_problem
from grader.scoring.points import is_placeholder

FOLDER = "results"
OUTPUT_CHARS = 5_000  # of one test's output; the whole file stays small
CUT = "\n... (cut)"


def gradescope_results(outcomes: Sequence[StudentView], assignment: Assignment) -> LmsExport:
    """``results/<student_id>.json`` for every graded student."""
    problems = [
        IdentityProblem(o.student, problem)
        for o in outcomes
        if graded(o) is not None and (problem := id_problem(o.student.student_id))
    ]
    check_identities("Gradescope results", assignment, problems)
    files = {}
    for outcome in outcomes:
        grade = graded(outcome)
        if grade is not None:
            files[_path(outcome)] = results_json(outcome, grade)
    skipped = not_graded_ids(outcomes)
    warnings = []
    if skipped:
        warnings.append(
            f"{len(skipped)} student(s) not graded get no results file: {', '.join(skipped)}"
        )
    # only names this export could have written: never a file the roster cannot name
    stale = tuple(
        _path(o) for o in outcomes if graded(o) is None and not id_problem(o.student.student_id)
    )
    return LmsExport(files, rows=len(files), warnings=tuple(warnings), stale=stale)


def results_json(outcome: StudentView, grade: Grade) -> bytes:
    """One student's ``results.json``: same grade, same bytes."""
    document: dict[str, Any] = {
        "score": grade.score,
        "max_score": grade.max_score,
        "output": _summary(outcome, grade),
        "tests": [_test(test) for test in grade.tests if not _is_rule(test)],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _is_rule(test: TestScore) -> bool:
    """A glob rule that matched no known test is no test: Gradescope would add its points
    once, as if it were one (two rules worth 30 for a 100-point assignment)."""
    return is_placeholder(test) or test.name == HIDDEN_RULE_LABEL


def _test(test: TestScore) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": test.name,
        "score": test.points_earned,
        "max_score": test.points_possible,
        "status": "passed" if test.status == "ok" else "failed",
        "visibility": test.visibility,
    }
    output = _output(test)
    if output:
        item["output"] = output
    return item


def _output(test: TestScore) -> str:
    if test.status == "did not run":
        return "did not run"
    parts = [test.message.strip()]
    if test.details.strip() and test.details.strip() != parts[0]:
        parts.append(test.details.strip())
    text = "\n\n".join(p for p in parts if p)
    return text if len(text) <= OUTPUT_CHARS else text[:OUTPUT_CHARS] + CUT


def _summary(outcome: StudentView, grade: Grade) -> str:
    lines = [f"{outcome.outcome}: {outcome.reason}" if outcome.reason else outcome.outcome]
    if any(_is_rule(t) for t in grade.tests):
        lines.append("Tests that did not run are not listed: their names are not known here.")
    if grade.penalty_points > 0:
        lines.append(
            f"Late penalty: {number_text(grade.penalty_points)} of "
            f"{number_text(grade.raw_points)} points ({grade.late.reason})."
        )
    return "\n".join(line for line in lines if line)


def _path(outcome: StudentView) -> str:
    return f"{FOLDER}/{outcome.student.student_id}.json"  # ids checked by id_problem


FORMAT = LmsFormat("gradescope", gradescope_results)
"""This format as `grader export --lms gradescope` knows it."""
