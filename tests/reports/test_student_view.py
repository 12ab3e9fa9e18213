"""The student view: every text for students scrubbed; every student renderer goes through it."""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grader.codec import to_json
from grader.config import load_course
from grader.exporting import export
from grader.outputs import assignment_hidden_material
from grader.project_tests import read_project_files
from grader.records import StudentOutcome, TestOutcome
from grader.reports.feedback import write_feedback
from grader.reports.hidden import REPLACEMENT, HiddenMaterial, line_key, non_trivial
from grader.reports.instructor import write_instructor_views
from grader.reports.lms import FORMATS
from grader.reports.manifest import write_manifests
from grader.reports.student_view import StudentView, hidden_labels, student_view, student_views
from grader.roster import load_roster
from grader.scoring import grade_submission
from grader.state import open_state

MakeOutcome = Callable[..., StudentOutcome]  # the make_outcome fixture of conftest.py
SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
HIDDEN_FILE = SAMPLE / "projects" / "hw1" / ".sphere-engine" / "tests" / "test_hidden.py"
HIDDEN_TEXT = HIDDEN_FILE.read_text()
HIDDEN_FAIL = "test_hidden_top_words_ties_alphabetical"  # the third hidden test
AFTER_EVERYTHING = datetime(2027, 1, 1, tzinfo=UTC)


def hw1_material() -> HiddenMaterial:
    course = load_course(SAMPLE)
    return assignment_hidden_material(course, course.assignment("hw1"), [])


def leaky(make_outcome: MakeOutcome, student_id: str = "bchen") -> StudentOutcome:
    """An hw1 outcome whose student smuggled the hidden test file into every text field."""
    roster = {s.student_id: s for s in load_roster(SAMPLE / "roster.csv")}
    leaked = f'ValueError: """{HIDDEN_TEXT}"""'
    outcome = make_outcome(student_id, student=roster[student_id], outcome="fail")
    tests = [
        TestOutcome(
            "test_public_word_count_simple",
            "tests.test_public",
            "failure",
            message=leaked.splitlines()[0],
            output=f"E   {leaked}\nsee {HIDDEN_FAIL} for more",
        ),
        TestOutcome(HIDDEN_FAIL, "tests.test_hidden", "failure", message="expected ['apple', 2]"),
        TestOutcome("test_hidden_word_count_punctuation", "tests.test_hidden", "ok"),
    ]
    grade = grade_submission(
        tests, outcome.assignment, engine_score=None, lateness=outcome.lateness
    )
    grade = replace(grade, warnings=(f"note naming {HIDDEN_FAIL}",))
    return replace(
        outcome,
        grade=grade,
        reason=f"some tests failed; {HIDDEN_FAIL} among them",
        build_output=repr(HIDDEN_TEXT),
        debug_log=f"warning: {HIDDEN_TEXT}",
    )


def readable(data: bytes | str) -> str:
    """What a reader sees in a rendered file: entities and Markdown escapes undone."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return html.unescape(text).replace("\\_", "_")


def assert_nothing_hidden(text: str) -> None:
    flat = line_key(text)
    for line in HIDDEN_TEXT.splitlines():
        if non_trivial(line):
            assert line_key(line) not in flat, line
    assert "test_hidden" not in text


def test_the_view_scrubs_every_text_and_drops_what_is_for_the_instructor(
    make_outcome: MakeOutcome,
) -> None:
    view = student_view(leaky(make_outcome), hw1_material())
    assert isinstance(view, StudentView)
    assert view.grade is not None
    assert view.grade.warnings == ()
    assert view.debug_log == ""
    assert all(r.visibility != "hidden" for r in view.assignment.tests)
    public = next(t for t in view.grade.tests if t.name == "test_public_word_count_simple")
    assert REPLACEMENT in public.details
    assert "see hidden test 1 for more" in public.details  # the label the feedback shows
    texts = [
        view.reason,
        view.build_output,
        *(f"{t.name} {t.message} {t.details}" for t in view.grade.tests),
    ]
    for text in texts:
        assert_nothing_hidden(text)
    assert view.reason == "some tests failed; hidden test 1 among them"


def test_hidden_tests_keep_status_and_points_under_their_label_only(
    make_outcome: MakeOutcome,
) -> None:
    view = student_view(leaky(make_outcome), hw1_material())
    assert view.grade is not None
    hidden = [t for t in view.grade.tests if t.visibility == "hidden"]
    assert [(t.name, t.status, t.points_possible) for t in hidden[:2]] == [
        ("hidden test 1", "failure", 15.0),
        ("hidden test 2", "ok", 10.0),
    ]
    assert all(t.message == t.details == t.classname == "" for t in hidden)


def test_labels_count_tests_not_visible_by_name_in_report_order(
    make_outcome: MakeOutcome,
) -> None:
    outcome = make_outcome()
    assert outcome.grade is not None
    labels = hidden_labels(outcome.grade.tests)
    assert labels[HIDDEN_FAIL] == "hidden test 3"
    assert labels["test_hidden_word_count_punctuation"] == "hidden test 1"


def test_text_without_hidden_material_passes_unchanged(make_outcome: MakeOutcome) -> None:
    outcome = make_outcome(failing={"test_public_word_count_simple": "assert 3 == 4"})
    view = student_view(outcome, hw1_material())
    assert view.grade is not None and outcome.grade is not None
    public = [t for t in outcome.grade.tests if t.visibility == "visible"]
    assert [t for t in view.grade.tests if t.visibility == "visible"] == public
    assert (view.reason, view.commit_reason) == (outcome.reason, outcome.commit_reason)


def test_feedback_and_manifest_carry_no_hidden_material(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    views = student_views([leaky(make_outcome)], hw1_material())
    write_feedback(views, tmp_path, now=AFTER_EVERYTHING)
    write_manifests(views, tmp_path)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "feedback/bchen.html",
        "feedback/bchen.md",
        "manifest/bchen.json",
    ]
    for path in written:
        text = readable(path.read_bytes())
        assert_nothing_hidden(text)
    assert "[hidden]" in readable((tmp_path / "feedback" / "bchen.md").read_bytes())


@pytest.mark.parametrize("lms", sorted(FORMATS))
def test_every_lms_file_carries_no_hidden_material(make_outcome: MakeOutcome, lms: str) -> None:
    outcomes = [leaky(make_outcome, sid) for sid in ("amartin", "bchen")]
    exported = FORMATS[lms].write(student_views(outcomes, hw1_material()), outcomes[0].assignment)
    assert exported.files
    for data in exported.files.values():
        assert_nothing_hidden(readable(data))


def test_gradescope_names_hidden_tests_by_label_and_keeps_their_visibility(
    make_outcome: MakeOutcome,
) -> None:
    views = student_views([leaky(make_outcome)], hw1_material())
    document = json.loads(
        FORMATS["gradescope"].write(views, views[0].assignment).files["results/bchen.json"]
    )
    first = next(t for t in document["tests"] if t["name"] == "hidden test 1")
    assert first == {
        "name": "hidden test 1",
        "score": 0.0,
        "max_score": 15.0,
        "status": "failed",
        "visibility": "hidden",
    }


def test_the_instructor_view_stays_complete(make_outcome: MakeOutcome, tmp_path: Path) -> None:
    write_instructor_views([leaky(make_outcome)], tmp_path)
    page = readable((tmp_path / "instructor" / "bchen.html").read_bytes())
    assert HIDDEN_FAIL in page
    assert "expected [&#39;apple&#39;, 2]" in page or "expected ['apple', 2]" in page
    assert 'assert solution.average_word_length("a bb bb") == 1.67' in page


def test_export_scrubs_what_it_reads_from_the_state(
    make_outcome: MakeOutcome, tmp_path: Path
) -> None:
    course = tmp_path / "course"
    shutil.copytree(SAMPLE, course, ignore=shutil.ignore_patterns(".grader", "out", "repos"))
    outcome = leaky(make_outcome)
    with open_state(load_course(course).state_dir) as state:
        run = state.start_run(engine="test", assignments=["hw1"])
        state.record_grade(
            run, "hw1", "bchen", status="graded", score=85.0, outcome_json=to_json(outcome)
        )
    result = export(course, "hw1", "gradescope")
    (path,) = result.paths
    assert_nothing_hidden(readable(path.read_bytes()))
    assert read_project_files(course / "projects" / "hw1")  # the material came from here
