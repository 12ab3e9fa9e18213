"""A run compiles its output templates while the engine still works, not at its end."""

from __future__ import annotations

from pathlib import Path

from grader.grading import GradeOptions, grade
from grader.records import StudentOutcome
from grader.reports.templating import compile_templates, environment, template_dir
from tests.support.repos import GOOD, ON_TIME, commit


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
