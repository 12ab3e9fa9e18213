"""What `grader doctor` says about the LMSs course.toml names, before any publish needs them.

For ``[lms.canvas]`` and ``[lms.moodle]``: whether the token variable is set, whether the
site answers and accepts the token (Canvas: ``GET /courses/:id``; Moodle:
``core_webservice_get_site_info``, which also lists the functions the service offers),
and whether each assignment's LMS id exists there. Nothing here prints or writes a
token: the variable is named, its value never. The probe retries little and waits
briefly: a doctor that hangs on a dead site says nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from grader.api.retry import RetryPolicy
from grader.config import CanvasSettings, Course, MoodleSettings
from grader.errors import LmsError, LmsUnauthorizedError, LmsUnreachableError
from grader.publish.canvas_api import CanvasClient, canvas_settings
from grader.publish.lms_http import LmsHttpSettings, Sleep
from grader.publish.moodle_api import PUBLISH_FUNCTIONS, MoodleClient, SiteInfo, moodle_settings
from grader.reports.lms.sheet import lms_setting

Level = Literal["ok", "warning", "error"]
PROBE_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.5, backoff_cap=1.0, deadline=20.0)
PROBE_TIMEOUT = 10.0  # seconds for one request


@dataclass(frozen=True)
class LmsCheck:
    """One line of `grader doctor`: the check's name, its level, what it found."""

    name: str
    level: Level
    message: str


def lms_checks(
    course: Course, environ: Mapping[str, str], *, sleep: Sleep = asyncio.sleep
) -> list[LmsCheck]:
    """The checks of each LMS course.toml configures (none when it configures none)."""
    checks: list[LmsCheck] = []
    if course.lms.canvas is not None:
        checks += asyncio.run(_canvas(course, course.lms.canvas, environ, sleep))
    if course.lms.moodle is not None:
        checks += asyncio.run(_moodle(course, course.lms.moodle, environ, sleep))
    return checks


def _quick(settings: LmsHttpSettings) -> LmsHttpSettings:
    return replace(settings, retry=PROBE_RETRY, timeout=PROBE_TIMEOUT)


async def _canvas(
    course: Course, settings: CanvasSettings, environ: Mapping[str, str], sleep: Sleep
) -> list[LmsCheck]:
    token = environ.get(settings.token_env, "").strip()
    client = CanvasClient(_quick(canvas_settings(settings.url, token or "-")), sleep=sleep)
    async with client:
        site = await _site(
            "canvas",
            settings.url,
            settings.token_env,
            token,
            lambda: client.course_name(settings.course_id),
            f"course {settings.course_id}",
        )
        if site.level != "ok":
            return [site]

        async def find(lms_id: str) -> str | None:
            try:
                return await client.assignment_name(settings.course_id, lms_id)
            except LmsError as exc:
                if exc.http_status == 404:
                    return None
                raise

        ids = await _assignments(course, "canvas_assignment_id", find)
    return [site, ids]


async def _moodle(
    course: Course, settings: MoodleSettings, environ: Mapping[str, str], sleep: Sleep
) -> list[LmsCheck]:
    token = environ.get(settings.token_env, "").strip()
    client = MoodleClient(_quick(moodle_settings(settings.url, token or "-")), sleep=sleep)
    async with client:
        info = SiteInfo("", frozenset(), uploads=False)

        async def answer() -> str:
            nonlocal info
            info = await client.site_info()
            return info.name

        site = await _site("moodle", settings.url, settings.token_env, token, answer, "the site")
        if site.level != "ok":
            return [site]
        functions = info.functions
        lacking = [f for f in PUBLISH_FUNCTIONS if f not in functions]
        if settings.attach_feedback and not info.uploads:
            lacking.append("file uploads (attach_feedback needs its 'Can upload files')")
        if lacking:
            site = LmsCheck(
                "moodle",
                "error",
                f"{site.message}, but its service lacks {', '.join(lacking)} (publish needs them)",
            )
        if "mod_assign_get_assignments" not in functions:
            note = "the service lacks mod_assign_get_assignments, so the ids were not checked"
            return [site, LmsCheck("moodle-assignments", "warning", note)]
        known = await client.assignment_ids()

        async def find(lms_id: str) -> str | None:
            return known.get(lms_id)

        return [site, await _assignments(course, "moodle_assignment_id", find)]


async def _site(
    name: str,
    url: str,
    token_env: str,
    token: str,
    read: Callable[[], Awaitable[str]],
    what: str,
) -> LmsCheck:
    """Whether the site answers and takes the token (``read`` reads ``what`` there)."""
    try:
        found = await read()
    except LmsUnreachableError as exc:
        return LmsCheck(name, "error", f"{url} cannot be reached: {exc}")
    except LmsUnauthorizedError:
        if not token:
            return LmsCheck(
                name, "warning", f"{url} answers; {token_env} is not set (publish reads it)"
            )
        return LmsCheck(name, "error", f"{url} refused the token in {token_env}")
    except LmsError as exc:
        if not token:
            return LmsCheck(name, "warning", f"{url}: {token_env} is not set (publish reads it)")
        return LmsCheck(name, "error", f"{url}: {what} cannot be read: {exc}")
    if not token:  # answered without a token: a site that needs none (or a proxy's page)
        return LmsCheck(name, "warning", f"{url} answers; {token_env} is not set")
    title = f" ({found})" if found else ""
    return LmsCheck(name, "ok", f"{url}: {what}{title}, the token in {token_env} is accepted")


async def _assignments(
    course: Course, key: str, find: Callable[[str], Awaitable[str | None]]
) -> LmsCheck:
    """Whether every assignment's ``key`` names an assignment the LMS has."""
    name = key.split("_", 1)[0] + "-assignments"
    found: list[str] = []
    missing: list[str] = []
    for assignment in course.assignments.values():
        lms_id = lms_setting(assignment, key)
        if lms_id is None:
            continue
        title = await find(lms_id) if lms_id.isdigit() else None
        if title is None:
            missing.append(f"{assignment.id} ({key} {lms_id})")
        else:
            found.append(f"{assignment.id} -> {lms_id} {title}".rstrip())
    if missing:
        return LmsCheck(name, "error", f"not found: {', '.join(missing)}")
    if not found:
        return LmsCheck(name, "warning", f"no assignment sets {key}: nothing can be published")
    return LmsCheck(name, "ok", "; ".join(found))
