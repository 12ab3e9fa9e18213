"""A run does what it can of its outputs while the engine still works, not at its end:
it compiles the templates and writes each student's pages as their result comes in."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from grader.config import load_course
from grader.errors import GraderError
from grader.grading import GradeOptions, grade, report
from grader.outputs import StudentPages, write_assignment_outputs
from grader.records import StudentOutcome
from grader.reports import feedback, templating
from grader.reports.templating import compile_templates, environment, render_page, template_dir
from grader.roster import load_roster
from grader.state import open_state
from grader.status import course_status
from tests.support.repos import GOOD, HALF, ON_TIME, commit


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, total: int) -> None:
        self.events.append(f"start {total}")

    def step(self, assignment: str, student_id: str, stage: str) -> None:
        self.events.append(f"{stage} {student_id}")

    def finished(self, outcome: StudentOutcome) -> None:
        self.events.append(f"finished {outcome.student.student_id}")


def compiled() -> set[str]:
    return {template.name for template in environment().cache.values() if template.name}


def every_template() -> set[str]:
    return {path.name for path in template_dir().glob("*.j2")}


def test_compile_templates_compiles_every_one() -> None:
    environment.cache_clear()
    compile_templates()
    assert compiled() == every_template()


def test_a_run_compiles_every_template_and_reports_progress_as_before(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    environment.cache_clear()
    progress = Recorder()
    report = grade(GradeOptions(tiny_course), progress=progress)
    # preview.md.j2 is never rendered by a grading run: only the warm-up compiled it
    assert compiled() == every_template()
    assert progress.events[0] == "start 3"
    finished = sorted(e for e in progress.events if e.startswith("finished"))
    assert finished == sorted(f"finished {o.student.student_id}" for o in report.summary.outcomes)
    assert "submit ada" in progress.events
    assert (tiny_course / "out" / "add" / "feedback" / "ada.md").is_file()


class PagesSeen(Recorder):
    """Records, at each finished student, whose feedback pages exist already."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        self.pages: list[set[str]] = []

    def finished(self, outcome: StudentOutcome) -> None:
        super().finished(outcome)
        folder = self.out / "add" / "feedback"
        self.pages.append({p.stem for p in folder.glob("*.md")} if folder.is_dir() else set())


def files(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_students_pages_are_written_as_results_come_in(
    tiny_course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    commit(tiny_course / "repos" / "bob", {"solution.py": HALF}, "try", ON_TIME)
    rendered: list[str] = []

    def counted(template: str, view: object) -> bytes:
        rendered.append(template)
        return render_page(template, view)

    monkeypatch.setattr(feedback, "render_page", counted)
    progress = PagesSeen(tiny_course / "out")
    grade(GradeOptions(tiny_course), progress=progress)
    # when the k-th student finishes, the k-1 before have their pages already
    assert [len(seen) for seen in progress.pages] == [0, 1, 2]
    # each feedback page was rendered once, as its result came in: not again at the end
    assert sorted(rendered) == ["feedback.html.j2"] * 3 + ["feedback.md.j2"] * 3
    # and the end of the run wrote what a report from SQLite alone writes
    report(tiny_course, out_dir=tiny_course / "again")
    assert files(tiny_course / "out" / "add") == files(tiny_course / "again" / "add")


def test_a_page_whose_view_changed_since_is_written_again_at_the_end(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    first = grade(GradeOptions(tiny_course), progress=Recorder())
    course = load_course(tiny_course)
    out = tiny_course / "out"
    pages = StudentPages(course, out)
    ada = next(o for o in first.summary.outcomes if o.student.student_id == "ada")
    pages.write(replace(ada, reason="a reason SQLite does not hold"))
    stale = (out / "add" / "instructor" / "ada.md").read_text()
    assert "a reason SQLite does not hold" in stale
    with open_state(course.state_dir) as state:
        write_assignment_outputs(
            course,
            course.assignment("add"),
            state,
            load_roster(course.roster),
            out,
            pages=pages.pages,
        )
    assert (
        "a reason SQLite does not hold" not in (out / "add" / "instructor" / "ada.md").read_text()
    )
    report(tiny_course, out_dir=tiny_course / "again")
    assert files(out / "add") == files(tiny_course / "again" / "add")


def test_an_unchanged_page_is_not_written_again_at_the_end(tiny_course: Path) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)
    first = grade(GradeOptions(tiny_course), progress=Recorder())
    course = load_course(tiny_course)
    out = tiny_course / "out"
    for path in (out / "add").rglob("ada.*"):
        path.unlink()
    pages = StudentPages(course, out)
    ada = next(o for o in first.summary.outcomes if o.student.student_id == "ada")
    pages.write(ada)
    names = sorted(p.relative_to(out / "add").as_posix() for p in (out / "add").rglob("ada.*"))
    assert names == [
        "feedback/ada.html",
        "feedback/ada.md",
        "instructor/ada.html",
        "instructor/ada.md",
        "manifest/ada.json",
    ]
    # a page the end of the run finds written from the same view is trusted as it is
    marker = out / "add" / "feedback" / "ada.md"
    marker.write_text("left as it was")
    with open_state(course.state_dir) as state:
        write_assignment_outputs(
            course,
            course.assignment("add"),
            state,
            load_roster(course.roster),
            out,
            pages=pages.pages,
        )
    assert marker.read_text() == "left as it was"
    assert (out / "add" / "feedback" / "bob.md").is_file()


def test_missing_templates_stop_the_outputs_not_the_grading(
    tiny_course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(tiny_course / "repos" / "ada", {"solution.py": GOOD}, "solve", ON_TIME)

    def missing() -> Path:
        raise GraderError("grader's templates are missing: reinstall grader")

    monkeypatch.setattr(templating, "template_dir", missing)
    environment.cache_clear()
    try:
        with pytest.raises(GraderError, match="templates are missing"):
            grade(GradeOptions(tiny_course), progress=Recorder())
    finally:
        environment.cache_clear()
    # every student was graded and stored before the outputs met the fault
    assert {row.student_id: row.submissions for row in course_status(tiny_course)} == {
        "ada": 1,
        "bob": 0,
        "cy": 0,
    }
