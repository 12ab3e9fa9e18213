"""`grader doctor`: check everything a run needs and say what is wrong in plain words."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grader.config import Course, load_course
from grader.connect import EngineChoice, choose_engine, open_client
from grader.errors import (
    EXIT_CONFIG,
    EXIT_ENGINE,
    EXIT_OK,
    ConfigError,
    EngineError,
    GraderError,
    UnauthorizedError,
)
from grader.publish.probe import lms_checks
from grader.roster import load_roster

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    message: str


def run_checks(course_dir: Path, *, engine_url: str | None = None) -> list[Check]:
    """Every check, in order; stops early only when the course itself cannot be read."""
    try:
        course = load_course(course_dir)
    except ConfigError as exc:
        return [Check("config", "error", str(exc))]
    checks = [Check("config", "ok", f"{course.name}: {len(course.assignments)} assignment(s)")]
    checks.append(_roster(course))
    checks.append(_git())
    checks.extend(_projects(course))
    checks.extend(_lms(course))
    try:
        engine = choose_engine(course, url=engine_url)
    except ConfigError as exc:
        return [*checks, Check("engine", "error", str(exc))]
    if engine.is_local:
        checks.extend(_sandbox())
        checks.extend(_environments(course, engine.data_dir))
    checks.extend(asyncio.run(_engine(engine, course)))
    return checks


def exit_code(checks: list[Check]) -> int:
    """3 when the engine failed its check, 2 for any other error, else 0."""
    if any(c.name == "engine" and c.level == "error" for c in checks):
        return EXIT_ENGINE
    return EXIT_CONFIG if any(c.level == "error" for c in checks) else EXIT_OK


def _roster(course: Course) -> Check:
    try:
        students = load_roster(course.roster)
    except GraderError as exc:
        return Check("roster", "error", str(exc))
    bad = [s for s in students if s.problem]
    if bad:
        lines = "; ".join(f"line {s.line}: {s.problem}" for s in bad)
        return Check("roster", "warning", f"{len(students)} students, {len(bad)} unusable: {lines}")
    return Check("roster", "ok", f"{len(students)} students in {course.roster.name}")


def _lms(course: Course) -> list[Check]:
    """Each configured LMS: token set, site answering and accepting it, assignment ids."""
    return [Check(c.name, c.level, c.message) for c in lms_checks(course, os.environ)]


def _git() -> Check:
    if shutil.which("git") is None:
        return Check("git", "error", "git is not installed; student repositories cannot be read")
    version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    return Check("git", "ok", version.stdout.strip())


def _projects(course: Course) -> list[Check]:
    from grader.engine.audit import audit_project

    checks = []
    for assignment in course.assignments.values():
        config = course.projects_dir / assignment.project / "config.json"
        if config.is_file():
            checks.append(Check(f"project {assignment.project}", "ok", str(config)))
            for warning in audit_project(config.parent):
                checks.append(Check(f"project {assignment.project}", "warning", warning))
        else:
            checks.append(
                Check(
                    f"project {assignment.project}",
                    "warning",
                    f"{config} is missing: the built-in engine cannot run {assignment.id} "
                    "(fine if the project only exists on the Sphere Engine service)",
                )
            )
    return checks


def _environments(course: Course, data_dir: Path) -> list[Check]:
    """Each project with a requirements.txt: is its environment built on this engine?"""
    from grader.engine.environments import Environments

    environments = Environments(data_dir / "environments")
    checks = []
    for project in sorted({assignment.project for assignment in course.assignments.values()}):
        folder = course.projects_dir / project
        if not (folder / "config.json").is_file():
            continue
        state = environments.state(folder, project)
        if state.key is None and state.ready:
            continue  # no requirements.txt: the engine's own Python
        if state.ready:
            checks.append(Check(f"environment {project}", "ok", state.detail))
        elif state.key is None:
            checks.append(Check(f"environment {project}", "error", state.detail))
        else:
            detail = f"{state.detail}: the first submission builds it, or run `grader engine "
            detail += f"prepare {course.root}` now"
            checks.append(Check(f"environment {project}", "warning", detail))
    return checks


def _sandbox() -> list[Check]:
    from grader.engine import detect_sandbox
    from grader.engine.sandbox.detect import (
        kernel_limits,
        separation,
        syscall_filter,
        warm_harness,
    )

    info = detect_sandbox()
    holds, what = separation(info.kind, root=os.geteuid() == 0)
    filtered, how = syscall_filter(info.kind)
    bounded, which = kernel_limits(info.kind)
    guarantees = [
        Check("separation", "ok" if holds else "warning", what),
        Check("syscalls", "ok" if filtered else "warning", how),
        Check("limits", "ok" if bounded else "warning", which),
        Check("harness", "ok", warm_harness(info.kind)[1]),  # speed, not a guarantee
    ]
    if info.warning:
        return [Check("sandbox", "warning", f"{info.kind}: {info.warning}"), *guarantees]
    return [Check("sandbox", "ok", f"{info.kind}: {info.detail}"), *guarantees]


async def _engine(engine: EngineChoice, course: Course) -> list[Check]:
    try:
        async with open_client(engine, course) as client:
            message = await client.test()
            stats = await client.stats()
    except UnauthorizedError:
        return [
            Check(
                "engine",
                "error",
                f"{engine.label} refused the access token (401): check SPHERE_ENGINE_TOKEN",
            )
        ]
    except EngineError as exc:
        return [Check("engine", "error", f"{engine.label} cannot be used: {exc}")]
    checks = [Check("engine", "ok", f"{engine.label}: {message}")]
    level: Level = "ok" if stats.free else "warning"
    note = "" if stats.free else " (none free now: submissions will wait)"
    checks.append(Check("slots", level, f"{stats.free} of {stats.all} free{note}"))
    return checks
