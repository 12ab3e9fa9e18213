"""The `grader` command line: parse options, call one core function, print the result.

This is the only place that turns a GraderError into an exit code (DESIGN.md):
0 all graded; 1 some students not graded; 2 usage or configuration; 3 engine.
"""

from __future__ import annotations

import functools
import gc
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader import __version__
from grader.config import load_course
from grader.errors import EXIT_CONFIG, EXIT_OK, ConfigError, GraderError, UnauthorizedError
from grader.grading import GradeOptions, GradeReport, grade, report
from grader.progress import make_progress, make_steps
from grader.publish.results import PROBLEMS as PUBLISH_PROBLEMS
from grader.records import OverrideKind, StudentOutcome
from grader.reports.lms import LMS_CHOICES, LMS_OPTIONS
from grader.scoring.overrides import override_note
from grader.tables import Column, plain_table

F = TypeVar("F", bound=Callable[..., Any])

# Options shared by several commands, declared once.
course_dir_argument = click.argument(
    "course_dir", type=click.Path(path_type=Path, file_okay=False, exists=False)
)
assignments_option = click.option(
    "-a", "--assignment", "assignments", multiple=True, help="Only this assignment (repeatable)."
)
engine_option = click.option(
    "--engine", "engine_url", metavar="URL", help="Engine API URL (default: built-in engine)."
)
out_option = click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Output folder (default: COURSE_DIR/out).",
)


def lms_options(func: F) -> F:
    """One flag per option an LMS format declares (``--tabs`` for Blackboard)."""
    for option in reversed(LMS_OPTIONS):
        func = click.option(f"--{option.name}", is_flag=True, help=option.help)(func)
    return func


PLAIN_WIDTH = 132  # cron mail and log files: wide enough that table rows never wrap


def _console() -> Console:
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, PLAIN_WIDTH)
    return console


def _guard(func: Callable[..., int | None]) -> Callable[..., None]:
    """Run a command; the one place where its result or our error becomes the exit code.

    A command returns its exit code (None: 0); a ``GraderError`` is one clear line on
    stderr and the code its class names.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = func(*args, **kwargs)
        except GraderError as exc:
            hint = ""
            if isinstance(exc, UnauthorizedError):
                hint = "; the engine refused the access token: check SPHERE_ENGINE_TOKEN"
            click.echo(f"error: {exc}{hint}", err=True)
            code = exc.exit_code
        if code:
            click.get_current_context().exit(code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grader")
def main() -> None:
    """Grade a programming course on Sphere Engine Containers (or the built-in engine)."""


def run() -> None:
    """The `grader` program (``python -m grader`` and the installed script): ``main``, then
    an exit that skips the collector's last walks over every object of the run.

    Python's finalization collects the whole heap (the run's outcomes, pandas, the compiled
    templates): 0.15-0.25 s after the last line of a 200-student run. The collector leaves
    frozen objects alone, and the process's end returns their memory; files and the log
    are closed and flushed as before (their ``with`` blocks, then atexit).
    """
    try:
        main()
    finally:
        gc.freeze()


@main.command("grade")
@course_dir_argument
@assignments_option
@click.option(
    "-s", "--student", "students", multiple=True, help="Only this student id (repeatable)."
)
@click.option("--force", is_flag=True, help="Submit again even if this exact archive was graded.")
@click.option(
    "--preview",
    is_flag=True,
    help="Check each student's latest commit (no deadline); write out/<a>/preview/ only.",
)
@engine_option
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="Most submissions executing at once."
)
@out_option
@_guard
def grade_command(
    course_dir: Path,
    assignments: Sequence[str],
    students: Sequence[str],
    force: bool,
    preview: bool,
    engine_url: str | None,
    concurrency: int | None,
    out_dir: Path | None,
) -> int:
    """Grade every student of COURSE_DIR (or the chosen assignments and students)."""
    options = GradeOptions(
        course_dir=course_dir,
        assignments=tuple(assignments),
        students=tuple(students),
        force=force,
        engine_url=engine_url,
        concurrency=concurrency,
        out_dir=out_dir,
        preview=preview,
    )
    console = _console()
    with make_progress(console) as progress:
        result = grade(options, progress=progress)
    _print_grade_report(console, result)
    return result.exit_code


GRADE_COLUMNS = (
    Column("student"),
    Column("name"),
    Column("score", right=True),
    Column("status"),
    Column("outcome"),
    Column("commit"),
)


def _print_grade_report(console: Console, result: GradeReport) -> None:
    for outputs in result.outputs:
        title = f"{outputs.assignment}: {result.course.name}"
        rows = []
        for o in outputs.outcomes:
            score = f"{o.grade.score:g}/{o.grade.max_score:g}" if o.grade else "-"
            if o.override is not None and o.override.applies:
                score += " (override)"
            commit = (o.commit or "")[:10]
            rows.append((o.student.student_id, o.student.name, score, o.status, o.outcome, commit))
        plain = plain_table(console, title, GRADE_COLUMNS, rows)
        if plain is not None:  # what rich prints here, written at once (200 rows: ~1 ms)
            console.print(plain, markup=False, highlight=False, emoji=False)
        else:
            table = Table(title=title, title_justify="left")
            for column in GRADE_COLUMNS:
                table.add_column(column.header, justify="right" if column.right else "left")
            for row in rows:
                status = row[3] if row[3] == "graded" else f"[bold red]{row[3]}[/]"
                table.add_row(*row[:3], status, *row[4:])
            console.print(table)
        console.print(f"  wrote {outputs.directory}/")
        _print_override_notes(console, outputs.outcomes)
    summary = result.summary
    console.print(
        f"engine: {result.engine.label}; submissions created: {summary.submissions_created}, "
        f"reused: {summary.reused}; log: {result.log_file}"
    )
    if summary.possible_duplicates:
        console.print(
            f"[yellow]note: {summary.possible_duplicates} create call(s) had an unknown outcome "
            "and were retried; the engine may hold that many duplicate submissions[/]"
        )
    for o in summary.not_graded:
        console.print(
            f"[bold red]NOT GRADED[/] {o.assignment.id}/{o.student.student_id}: "
            f"{o.outcome}: {o.reason}",
            markup=True,
        )


@main.command("report")
@course_dir_argument
@assignments_option
@out_option
@_guard
def report_command(course_dir: Path, assignments: Sequence[str], out_dir: Path | None) -> None:
    """Re-render feedback and gradebooks from stored results (runs nothing)."""
    for outputs in report(course_dir, assignments=assignments, out_dir=out_dir):
        click.echo(f"wrote {outputs.directory}/ ({len(outputs.outcomes)} students)")


@main.command("export")
@course_dir_argument
@click.option("-a", "--assignment", required=True, help="The assignment to export.")
@click.option(
    "--lms",
    required=True,
    type=click.Choice(LMS_CHOICES, case_sensitive=False),
    help="Which gradebook import format to write.",
)
@lms_options
@out_option
@_guard
def export_command(
    course_dir: Path, assignment: str, lms: str, out_dir: Path | None, **options: bool
) -> None:
    """Write the LMS import file of one assignment from stored grades (runs nothing)."""
    from grader.exporting import export

    result = export(course_dir, assignment, lms.lower(), out_dir=out_dir, **options)
    for path in result.paths:
        click.echo(f"wrote {path}")
    for path in result.removed:
        click.echo(f"removed {path} (no longer graded)")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@main.group("engine")
def engine_group() -> None:
    """The built-in Sphere Engine Containers engine."""


@engine_group.command("serve")
@click.option(
    "--projects",
    "projects_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--slots", type=click.IntRange(min=1), help="Executions at once (default: CPUs).")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where submissions are stored (default: ./engine-data).",
)
@_guard
def engine_serve(
    projects_dir: Path, host: str, port: int, slots: int | None, data_dir: Path | None
) -> None:
    """Serve the Containers API v1.1 on HOST:PORT; token from SPHERE_ENGINE_TOKEN."""
    from grader.engine import EngineConfig
    from grader.engine.serve import serve

    token = os.environ.get("SPHERE_ENGINE_TOKEN", "")
    if not token:
        raise ConfigError("set SPHERE_ENGINE_TOKEN to the token clients must send")
    config = EngineConfig(
        projects_dir=projects_dir.resolve(),
        data_dir=(data_dir or Path("engine-data")).resolve(),
        token=token,
        slots=slots,
        base_url=f"http://{host}:{port}/api/v1",
    )
    serve(config, host=host, port=port)


@engine_group.command("prepare")
@click.argument(
    "course_dir",
    required=False,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
)
@click.option(
    "--projects",
    "projects_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="A served engine's projects (with --data), instead of COURSE_DIR.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The served engine's data folder (default: ./engine-data).",
)
@_guard
def engine_prepare(
    course_dir: Path | None, projects_dir: Path | None, data_dir: Path | None
) -> int:
    """Build each project's environment (its requirements.txt) before a run.

    COURSE_DIR: for the built-in engine of that course. --projects/--data: for
    `grader engine serve` with the same options.
    """
    from grader.engine.environments import prepare

    if (course_dir is None) == (projects_dir is None):
        raise click.UsageError("give either COURSE_DIR or --projects (with --data)")
    if course_dir is not None:
        if data_dir is not None:
            raise click.UsageError("--data goes with --projects; COURSE_DIR has its own")
        course = load_course(course_dir)
        projects_dir, data_dir = course.projects_dir, course.state_dir / "engine"
    elif projects_dir is None:  # unreachable: one of the two was given
        raise click.UsageError("give either COURSE_DIR or --projects")
    states = prepare(projects_dir.resolve(), (data_dir or Path("engine-data")).resolve())
    for state in states:
        click.echo(f"{state.project}: {state.detail}")
    if not states:
        click.echo(f"no project in {projects_dir}")
    return EXIT_OK if all(state.ready for state in states) else EXIT_CONFIG


@main.command("status")
@course_dir_argument
@assignments_option
@_guard
def status_command(course_dir: Path, assignments: Sequence[str]) -> None:
    """Show where every student stands: last graded commit, score, state, when."""
    from grader.status import course_status

    table = Table()
    for column in ("assignment", "student", "name", "commit", "score", "state", "when", "runs"):
        table.add_column(column)
    for row in course_status(course_dir, assignments=assignments):
        table.add_row(
            row.assignment,
            row.student_id,
            row.name,
            (row.commit or "")[:10],
            ("-" if row.score is None else f"{row.score:g}")
            + (f" ({row.override})" if row.override else ""),
            row.state,
            row.when_text,
            str(row.submissions),
        )
    _console().print(table)


@main.command("override")
@course_dir_argument
@click.option(
    "-a", "--assignment", "assignment", help="The assignment (required to set or remove)."
)
@click.option("-s", "--student", "student", help="The student id (required to set or remove).")
@click.option("--score", type=float, help="Set the score to N.")
@click.option("--adjust", type=float, help="Add N (negative: take off) to what the tests give.")
@click.option("--reason", default="", help="Why: kept with the override, shown in history.")
@click.option("--show-reason", is_flag=True, help="Let the student's feedback quote the reason.")
@click.option("--list", "list_only", is_flag=True, help="List the overrides in force.")
@click.option("--remove", is_flag=True, help="Remove the student's override.")
@out_option
@_guard
def override_command(
    course_dir: Path,
    assignment: str | None,
    student: str | None,
    score: float | None,
    adjust: float | None,
    reason: str,
    show_reason: bool,
    list_only: bool,
    remove: bool,
    out_dir: Path | None,
) -> None:
    """Set (--score N | --adjust N, with --reason), --list or --remove a grade override."""
    from grader.overriding import list_overrides, remove_override, set_override

    console = _console()
    if list_only:
        if score is not None or adjust is not None or remove:
            raise click.UsageError("--list takes no --score, --adjust or --remove")
        rows = list_overrides(
            course_dir,
            assignments=(assignment,) if assignment else (),
            students=(student,) if student else (),
        )
        _print_overrides(console, rows)
        return
    if not assignment or not student:
        raise click.UsageError("give -a ASSIGNMENT and -s STUDENT (or --list)")
    if remove:
        if score is not None or adjust is not None:
            raise click.UsageError("--remove takes no --score or --adjust")
        change = remove_override(course_dir, assignment, student, reason=reason, out_dir=out_dir)
        if change.override is None:
            console.print(f"{assignment}/{student}: no override to remove")
        else:
            console.print(
                f"{assignment}/{student}: override removed; score now {_score(change.outcome)}"
            )
        return
    if (score is None) == (adjust is None):
        raise click.UsageError("give exactly one of --score N or --adjust N")
    kind: OverrideKind = "score" if score is not None else "adjust"
    value = score if score is not None else adjust
    assert value is not None  # one of them, checked above
    change = set_override(
        course_dir,
        assignment,
        student,
        kind=kind,
        value=value,
        reason=reason,
        show_reason=show_reason,
        out_dir=out_dir,
    )
    console.print(
        f"{assignment}/{student}: override set ({kind} {value:g}); score now "
        f"{_score(change.outcome)}; wrote {change.outputs.directory}/",
        markup=False,
    )
    _print_override_notes(console, [change.outcome])


def _score(outcome: StudentOutcome) -> str:
    grade = outcome.grade if outcome.status == "graded" else None
    return f"{grade.score:g}/{grade.max_score:g}" if grade else "- (not graded)"


def _print_overrides(console: Console, outcomes: Sequence[StudentOutcome]) -> None:
    table = Table()
    for column in ("assignment", "student", "override", "score", "graded", "set", "reason", "note"):
        table.add_column(column)
    for o in outcomes:
        override = o.override
        assert override is not None  # list_overrides returns overridden outcomes only
        graded = "-" if override.current_score is None else f"{override.current_score:g}"
        table.add_row(
            o.assignment.id,
            o.student.student_id,
            override.describe(),
            _score(o),
            graded,
            f"{override.created_at:%Y-%m-%d %H:%M}",
            Text(override.reason),  # the instructor's words, never markup
            override_note(override),
        )
    console.print(table)


def _print_override_notes(console: Console, outcomes: Sequence[StudentOutcome]) -> None:
    """Tell the instructor when a grade changed under an override."""
    for o in outcomes:
        note = override_note(o.override) if o.override else ""
        if note:
            console.print(f"[yellow]override[/] {o.assignment.id}/{o.student.student_id}: {note}")


@main.command("regrade")
@course_dir_argument
@click.option("-a", "--assignment", required=True, help="The assignment.")
@click.option("-s", "--student", required=True, help="The student id.")
@click.option("--reason", required=True, help="Why: recorded in history with before and after.")
@engine_option
@out_option
@_guard
def regrade_command(
    course_dir: Path,
    assignment: str,
    student: str,
    reason: str,
    engine_url: str | None,
    out_dir: Path | None,
) -> int:
    """Run one student again and record the grade before and after, with the reason."""
    from grader.overriding import regrade

    console = _console()
    with make_progress(console) as progress:
        result = regrade(
            course_dir,
            assignment,
            student,
            reason=reason,
            engine_url=engine_url,
            out_dir=out_dir,
            progress=progress,
        )
    record = result.regrade
    before = "-" if record.before_score is None else f"{record.before_score:g}"
    after = "-" if record.after_score is None else f"{record.after_score:g}"
    console.print(
        f"{assignment}/{student}: regraded ({reason}): {before} -> {after} "
        f"({record.after_status}); score now {_score(result.outcome)}",
        markup=False,
    )
    _print_override_notes(console, [result.outcome])
    return result.report.exit_code


@main.command("check")
@course_dir_argument
@click.option("-a", "--assignment", required=True, help="The assignment to check.")
@click.option(
    "--runs", default=1, show_default=True, type=click.IntRange(min=1), help="Runs of each."
)
@engine_option
@_guard
def check_command(course_dir: Path, assignment: str, runs: int, engine_url: str | None) -> int:
    """Before release: the reference gets full points, the starter its score, no test is
    flaky or close to its time limit. Exit 0 only when all of it holds."""
    from grader.checking import check

    result = check(course_dir, assignment, runs=runs, engine_url=engine_url)
    console = _console()
    for finding in result.findings:
        mark = "[green]ok[/]" if finding.ok else "[bold red]FAILED[/]"
        console.print(f"{mark:>8}  {finding.what}: ", end="")
        console.print(finding.detail, markup=False)
    verdict = "ready" if result.ok else "NOT ready"
    console.print(f"{assignment}: {verdict} ({runs} run(s) of each)", markup=False)
    return result.exit_code


@main.command("similarity")
@course_dir_argument
@click.option("-a", "--assignment", required=True, help="The assignment to compare.")
@out_option
@_guard
def similarity_command(course_dir: Path, assignment: str, out_dir: Path | None) -> int:
    """Compare every pair of graded workspaces (starter and project code left out); write
    out/<a>/similarity.html and similarity.csv. For instructors only."""
    from grader.comparing import similarity

    console = _console()
    with make_steps(console) as steps:
        result = similarity(course_dir, assignment, out_dir=out_dir, steps=steps)
    shown = min(len(result.above), 10)
    console.print(
        f"{assignment}: {result.compared} workspaces compared, {len(result.pairs)} pairs "
        f"listed, {len(result.above)} at or above {result.threshold:.0%} (or identical)",
        markup=False,
    )
    for pair in result.above[:shown]:
        what = "identical" if pair.identical else f"{pair.similarity:.1%}"
        console.print(f"  {pair.left} ~ {pair.right}: {what}", markup=False)
    if len(result.above) > shown:
        console.print(f"  ... and {len(result.above) - shown} more", markup=False)
    for student, why in result.skipped:
        console.print(f"[bold red]NOT COMPARED[/] {assignment}/{student}: ", end="")
        console.print(why, markup=False)
    console.print(f"wrote {result.html} and {result.csv}", markup=False)
    return result.exit_code


@main.command("doctor")
@course_dir_argument
@engine_option
@_guard
def doctor_command(course_dir: Path, engine_url: str | None) -> int:
    """Check config, roster, git, engine, token, slots and sandbox."""
    from grader.doctor import exit_code, run_checks

    checks = run_checks(course_dir, engine_url=engine_url)
    marks = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "error": "[bold red]error[/]"}
    console = _console()
    for check in checks:
        console.print(f"{marks[check.level]:>8}  {check.name}: ", end="")
        console.print(check.message, markup=False)
    return exit_code(checks)


@main.command("publish")
@course_dir_argument
@click.option("-a", "--assignment", required=True, help="The assignment to publish.")
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Choice(("canvas", "moodle", "git"), case_sensitive=False),
    help="Where grades and feedback go.",
)
@click.option(
    "-s", "--student", "students", multiple=True, help="Only this student id (repeatable)."
)
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--feedback-only", is_flag=True, help="Send feedback comments, no grades.")
@_guard
def publish_command(
    course_dir: Path,
    assignment: str,
    target: str,
    students: Sequence[str],
    dry_run: bool,
    feedback_only: bool,
) -> int:
    """Send stored grades and feedback to an LMS (only what changed since the last time)."""
    from grader.publishing import PublishOptions, publish

    options = PublishOptions(
        course_dir=course_dir,
        assignment=assignment,
        to=target.lower(),
        students=tuple(students),
        dry_run=dry_run,
        feedback_only=feedback_only,
    )
    result = publish(options)
    console = _console()
    title = f"{assignment} -> {result.target}" + (" (dry run: nothing sent)" if dry_run else "")
    table = Table(title=title, title_justify="left")
    for column in ("student", "name", "old", "new", "result", "detail"):
        table.add_column(column)
    for line in result.lines:
        style = "bold red" if line.result in PUBLISH_PROBLEMS else ""
        # roster names and LMS messages are data, never rich markup
        cells = (line.student_id, line.name, line.old, line.new, line.result, line.detail)
        table.add_row(*(Text(cell, style=style if i == 4 else "") for i, cell in enumerate(cells)))
    console.print(table)
    if result.settled:
        settled = "would settle" if dry_run else "settled"
        console.print(f"{settled} {result.settled} send(s) an interrupted publish had left open")
    counts = Counter(line.result for line in result.lines)
    console.print(", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "no students")
    return result.exit_code
