"""Course and assignment configuration: `course.toml` -> frozen, validated values.

Every error names the file and the dotted key (and TOML's own line for syntax errors).
Unknown keys are errors, so a typo never silently changes a grade.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from grader.errors import ConfigError

COURSE_FILE = "course.toml"
STATE_DIR = ".grader"

DEFAULT_CONCURRENCY = 8
DEFAULT_REQUESTS_PER_SECOND = 10.0
DEFAULT_TOKEN_ENV = "SPHERE_ENGINE_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_SUBMISSION_TIMEOUT = timedelta(minutes=15)  # when a project's stages are unknown here
DEFAULT_SUBMISSION_MARGIN = timedelta(minutes=2)  # over the stages' timeouts (deadlines.py)
DEFAULT_INFRA_RETRIES = 2
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_CAP = 30.0
DEFAULT_RETRY_DEADLINE = 300.0
DEFAULT_CANVAS_TOKEN_ENV = "CANVAS_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_MOODLE_TOKEN_ENV = "MOODLE_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_FEEDBACK_BRANCH = "feedback"
DEFAULT_MAX_ARCHIVE_BYTES = 20 * 1024 * 1024
DEFAULT_SIMILARITY_THRESHOLD = 0.5  # `grader similarity`: pairs this alike reach the dashboard
DEFAULT_EXCLUDE = (".git/**", "**/__pycache__/**", "**/*.pyc", ".DS_Store", "**/.DS_Store")

Visibility = Literal["visible", "hidden", "after_due_date"]
CommitClock = Literal["commit_date", "first_seen"]
VISIBILITIES: tuple[Visibility, ...] = ("visible", "hidden", "after_due_date")
CLOCKS: tuple[CommitClock, ...] = ("commit_date", "first_seen")


@dataclass(frozen=True)
class EngineSettings:
    """Where submissions run. ``url=None`` means the in-process local engine."""

    url: str | None = None
    token_env: str = DEFAULT_TOKEN_ENV
    concurrency: int = DEFAULT_CONCURRENCY
    requests_per_second: float | None = None  # None: 10/s remote, unlimited on this machine
    poll_interval: float | None = None  # None: adapt (fast locally, seconds on the cloud)
    submission_timeout: timedelta | None = None  # None: the stages' timeouts plus the margin
    submission_margin: timedelta = DEFAULT_SUBMISSION_MARGIN
    infra_retries: int = DEFAULT_INFRA_RETRIES
    slots: int | None = None  # in-process engine slots; None: CPU count
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT  # seconds for one HTTP exchange
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # per API call, the first try included
    backoff_base: float = DEFAULT_BACKOFF_BASE  # first retry waits up to this, then doubles
    backoff_cap: float = DEFAULT_BACKOFF_CAP  # no single wait is longer
    retry_deadline: float = DEFAULT_RETRY_DEADLINE  # seconds one call may spend retrying


@dataclass(frozen=True)
class CanvasSettings:
    """``[lms.canvas]``: where `grader publish --to canvas` sends grades and comments."""

    url: str  # the Canvas base URL, e.g. https://canvas.example.edu
    course_id: str  # digits, or Canvas's "sis_course_id:..." form
    token_env: str = DEFAULT_CANVAS_TOKEN_ENV
    attach_feedback: bool = False  # the feedback page attached to each new feedback comment


@dataclass(frozen=True)
class MoodleSettings:
    """``[lms.moodle]``: the Moodle site whose web services `--to moodle` calls."""

    url: str  # the site's base URL, e.g. https://moodle.example.edu
    token_env: str = DEFAULT_MOODLE_TOKEN_ENV
    attach_feedback: bool = False  # the feedback page as the grade's feedback file


@dataclass(frozen=True)
class GitFeedbackSettings:
    """``[lms.git]``: the branch of each student's repository that gets FEEDBACK.md."""

    branch: str = DEFAULT_FEEDBACK_BRANCH


@dataclass(frozen=True)
class LmsSettings:
    """The ``[lms]`` table: which LMS APIs `grader publish` may use (None: not set up)."""

    canvas: CanvasSettings | None = None
    moodle: MoodleSettings | None = None
    git: GitFeedbackSettings = field(default_factory=GitFeedbackSettings)


@dataclass(frozen=True)
class TestRule:
    """Points and visibility for every test whose name matches ``pattern`` (a glob)."""

    __test__ = False  # not a pytest class, despite the name

    pattern: str
    points: float
    visibility: Visibility = "visible"


@dataclass(frozen=True)
class LateTier:
    """Up to ``days`` days late costs ``percent`` percent (tables are cumulative steps)."""

    days: float
    percent: float


@dataclass(frozen=True)
class LatePolicy:
    """How lateness is measured and charged. ``max_days=0`` accepts nothing late."""

    grace_minutes: float = 0.0
    percent_per_day: float = 0.0
    tiers: tuple[LateTier, ...] = ()
    max_days: float = 0.0

    @property
    def window(self) -> timedelta:
        """How long after the (extended) deadline a commit is still accepted."""
        return timedelta(days=self.max_days, minutes=self.grace_minutes)


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    project: str
    deadline: datetime
    repo: str
    max_points: float
    scenario: str | None = None
    tests: tuple[TestRule, ...] = ()
    late: LatePolicy = field(default_factory=LatePolicy)
    extensions: Mapping[str, timedelta] = field(default_factory=dict)
    clock: CommitClock = "commit_date"
    branch: str | None = None  # None: the repository's default branch
    include: tuple[str, ...] = ("**",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES
    lms: Mapping[str, str] = field(default_factory=dict)  # e.g. canvas_assignment_id
    # globs over projects/<id>/ paths never shown to students (besides the files that
    # name a hidden test); see grader.reports.hidden
    hidden_files: tuple[str, ...] = ()
    # `grader check`: the instructor's reference solution (must get max_points) and the
    # starter code (must get starter_score), folders, bundles or repositories
    reference: str | None = None
    starter: str | None = None
    starter_score: float = 0.0
    # `grader similarity`: pairs at least this similar (0 to 1) are shown on the dashboard
    similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD

    def cutoff_for(self, student_id: str) -> datetime:
        """The last moment a commit of this student is still graded."""
        return self.due_for(student_id) + self.late.window

    def due_for(self, student_id: str) -> datetime:
        """The deadline for this student, extension included."""
        return self.deadline + self.extensions.get(student_id, timedelta())


@dataclass(frozen=True)
class Course:
    root: Path
    name: str
    roster: Path
    engine: EngineSettings
    assignments: Mapping[str, Assignment]
    projects_dir: Path
    lms: LmsSettings = field(default_factory=LmsSettings)
    # course.timezone: where deadlines without an offset are, and how every page shows
    # a moment (None: UTC)
    timezone: ZoneInfo | None = None
    # [course.late_days] budget: late days each student may spend over the term before
    # any percentage penalty (None: no budget)
    late_day_budget: int | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def assignment(self, assignment_id: str) -> Assignment:
        try:
            return self.assignments[assignment_id]
        except KeyError:
            known = ", ".join(sorted(self.assignments)) or "none"
            raise ConfigError(
                f"unknown assignment {assignment_id!r} (known: {known})",
                file=str(self.root / COURSE_FILE),
            ) from None


_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>min|w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """'48h', '2d', '1d12h', '90m' -> timedelta; raises ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(compact):
        if match.start() != pos:
            break
        seconds += float(match["n"]) * _UNIT_SECONDS[match["unit"]]
        pos = match.end()
    if pos != len(compact) or not compact:
        raise ValueError(f"not a duration: {text!r} (try '48h', '2d' or '1d12h')")
    return timedelta(seconds=seconds)


class _Reader:
    """Walks one TOML table, tracking the dotted key for error messages."""

    def __init__(self, data: Mapping[str, Any], file: Path, prefix: str):
        self.data = data
        self.file = file
        self.prefix = prefix
        self.used: set[str] = set()

    def error(self, key: str, message: str) -> ConfigError:
        dotted = f"{self.prefix}.{key}" if self.prefix else key
        return ConfigError(f"{message}", file=str(self.file), where=dotted)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(key, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def require(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise self.error(key, "required key is missing")
        return self.get(key, kind)

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = float(self.get(key, (int, float), default))
        if not math.isfinite(value) or value < minimum:
            raise self.error(key, f"must be a number >= {minimum:g}")
        return value

    def table(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict, {}), self.file, f"{self.prefix}.{key}".strip("."))

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key (check the spelling in config.example.toml)")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        int: "a number",
        float: "a number",
        str: "a string",
        dict: "a table",
        list: "a list",
        bool: "true or false",
        datetime: "a date and time",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def load_course(course_dir: Path) -> Course:
    """Read and validate ``COURSE_DIR/course.toml``."""
    root = course_dir.resolve()
    file = root / COURSE_FILE
    if not root.is_dir():
        raise ConfigError("not a directory", file=str(course_dir))
    if file.exists() and not file.is_file():
        raise ConfigError("is not a file (a course needs a course.toml file)", file=str(file))
    if not file.is_file():
        raise ConfigError(
            f"not a course folder: {COURSE_FILE} is missing (see config.example.toml)",
            file=str(course_dir),
        )
    try:
        with file.open("rb") as fp:
            data = tomllib.load(fp)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=str(file)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}): save it as UTF-8", file=str(file)
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(file)) from exc
    return parse_course(data, root, file)


def parse_course(data: Mapping[str, Any], root: Path, file: Path) -> Course:
    top = _Reader(data, file, "")
    course = top.table("course")
    name = course.require("name", str)
    roster = root / course.get("roster", str, "roster.csv")
    timezone = _timezone(course)
    projects_dir = root / course.get("projects", str, "projects")
    late_days = course.table("late_days")
    budget = int(late_days.number("budget", 0)) if "budget" in late_days.data else None
    if budget is not None and budget != late_days.data["budget"]:
        raise late_days.error("budget", "must be a whole number of days")
    late_days.reject_unknown()
    course.reject_unknown()
    engine = _engine(top.table("engine"))
    lms = _lms_settings(top.table("lms"))
    tables = top.get("assignments", dict, {})
    top.used.add("assignments")
    top.reject_unknown()
    assignments = {
        key: _assignment(key, _Reader(value, file, f"assignments.{key}"), timezone)
        for key, value in tables.items()
        if _is_table(top, f"assignments.{key}", value)
    }
    if not assignments:
        raise ConfigError("no assignments: add an [assignments.<id>] table", file=str(file))
    return Course(
        root,
        name,
        roster,
        engine,
        assignments,
        projects_dir,
        lms=lms,
        timezone=timezone,
        late_day_budget=budget,
    )


def _is_table(reader: _Reader, key: str, value: object) -> bool:
    if not isinstance(value, dict):
        raise ConfigError("expected a table", file=str(reader.file), where=key)
    return True


def _timezone(course: _Reader) -> ZoneInfo | None:
    name = course.get("timezone", str)
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise course.error("timezone", f"unknown time zone {name!r}") from None


def _engine(table: _Reader) -> EngineSettings:
    url = table.get("url", str)
    if url is not None and not re.match(r"https?://", url):
        raise table.error("url", "must start with http:// or https://")
    timeout = table.get("submission_timeout", str, None)
    margin = table.get("submission_margin", str, None)
    settings = EngineSettings(
        url=url.rstrip("/") if url else None,
        token_env=table.get("token_env", str, DEFAULT_TOKEN_ENV),
        concurrency=int(table.number("concurrency", DEFAULT_CONCURRENCY, minimum=1)),
        requests_per_second=(
            table.number("requests_per_second", DEFAULT_REQUESTS_PER_SECOND, minimum=0.01)
            if "requests_per_second" in table.data
            else None
        ),
        poll_interval=_optional_number(table, "poll_interval"),
        submission_timeout=_duration(table, "submission_timeout", timeout) if timeout else None,
        submission_margin=_duration(table, "submission_margin", margin)
        if margin
        else DEFAULT_SUBMISSION_MARGIN,
        infra_retries=int(table.number("infra_retries", DEFAULT_INFRA_RETRIES)),
        slots=_optional_int(table, "slots"),
        request_timeout=table.number("request_timeout", DEFAULT_REQUEST_TIMEOUT, minimum=0.1),
        max_attempts=int(table.number("max_attempts", DEFAULT_MAX_ATTEMPTS, minimum=1)),
        backoff_base=table.number("backoff_base", DEFAULT_BACKOFF_BASE),
        backoff_cap=table.number("backoff_cap", DEFAULT_BACKOFF_CAP),
        retry_deadline=table.number("retry_deadline", DEFAULT_RETRY_DEADLINE, minimum=0.1),
    )
    table.reject_unknown()
    return settings


def _lms_settings(table: _Reader) -> LmsSettings:
    canvas = moodle = None
    if "canvas" in table.data:
        section = table.table("canvas")
        course_id = str(section.require("course_id", (str, int))).strip()
        if not re.fullmatch(r"\d+|sis_course_id:\S+", course_id):
            raise section.error("course_id", "expected the course's number (or sis_course_id:...)")
        canvas = CanvasSettings(
            url=_site_url(section),
            course_id=course_id,
            token_env=section.get("token_env", str, DEFAULT_CANVAS_TOKEN_ENV),
            attach_feedback=section.get("attach_feedback", bool, False),
        )
        section.reject_unknown()
    if "moodle" in table.data:
        section = table.table("moodle")
        moodle = MoodleSettings(
            url=_site_url(section),
            token_env=section.get("token_env", str, DEFAULT_MOODLE_TOKEN_ENV),
            attach_feedback=section.get("attach_feedback", bool, False),
        )
        section.reject_unknown()
    git = table.table("git")
    branch = git.get("branch", str, DEFAULT_FEEDBACK_BRANCH).strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", branch) or ".." in branch:
        raise git.error("branch", f"{branch!r} is not a usable branch name")
    git.reject_unknown()
    table.reject_unknown()
    return LmsSettings(canvas=canvas, moodle=moodle, git=GitFeedbackSettings(branch))


def _site_url(table: _Reader) -> str:
    url: str = table.require("url", str).strip()
    if not re.match(r"https?://[^/\s]+", url):
        raise table.error("url", "must start with https:// (or http://) and name a host")
    return url.rstrip("/")


def _optional_number(table: _Reader, key: str) -> float | None:
    return table.number(key, 0.0, minimum=0.0) if key in table.data else None


def _optional_int(table: _Reader, key: str) -> int | None:
    return int(table.number(key, 1, minimum=1)) if key in table.data else None


def _duration(table: _Reader, key: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise table.error(key, str(exc)) from None


def _assignment(key: str, table: _Reader, timezone: ZoneInfo | None) -> Assignment:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", key):
        raise table.error("", "assignment ids use letters, digits, '_', '-' and '.'")
    title = table.get("title", str, key)
    project = table.get("project", str, key)
    deadline = _deadline(table, timezone)
    repo = table.require("repo", str)
    max_points = table.number("max_points", 100.0, minimum=0.0)
    clock = table.get("clock", str, "commit_date")
    if clock not in CLOCKS:
        raise table.error("clock", f"must be one of {', '.join(CLOCKS)}")
    max_mb = table.number("max_archive_mb", DEFAULT_MAX_ARCHIVE_BYTES / 2**20, minimum=0.001)
    assignment = Assignment(
        id=key,
        title=title,
        project=project,
        deadline=deadline,
        repo=repo,
        max_points=max_points,
        scenario=table.get("scenario", str),
        tests=_tests(table.table("tests")),
        late=_late(table.table("late")),
        extensions=_extensions(table.table("extensions")),
        clock=clock,
        branch=table.get("branch", str),
        include=_globs(table, "include", ("**",)),
        exclude=_globs(table, "exclude", ()) + DEFAULT_EXCLUDE,
        max_archive_bytes=int(max_mb * 2**20),
        lms=_lms(table.table("lms")),
        hidden_files=_globs(table, "hidden_files", ()),
        reference=table.get("reference", str),
        starter=table.get("starter", str),
        starter_score=table.number("starter_score", 0.0),
        similarity_threshold=_fraction(table, "similarity_threshold"),
    )
    table.reject_unknown()
    return assignment


def _fraction(table: _Reader, key: str) -> float:
    value = table.number(key, DEFAULT_SIMILARITY_THRESHOLD)
    if value > 1:
        raise table.error(key, "must be a number from 0 to 1 (0.5 is half the code)")
    return value


def _deadline(table: _Reader, timezone: ZoneInfo | None) -> datetime:
    value = table.require("deadline", (datetime, str))
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise table.error("deadline", f"not a date and time: {value!r}") from None
    if value.tzinfo is None:
        if timezone is None:
            raise table.error(
                "deadline",
                "needs a time zone: write 2026-10-01T23:59:00Z or set course.timezone",
            )
        value = value.replace(tzinfo=timezone)
    deadline: datetime = value.astimezone(UTC)
    return deadline


def _tests(table: _Reader) -> tuple[TestRule, ...]:
    rules = []
    for pattern, value in table.data.items():
        table.used.add(pattern)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            rules.append(TestRule(pattern, float(value)))
            continue
        if not isinstance(value, dict):
            raise table.error(pattern, "expected points or { points = N, visibility = ... }")
        rule = _Reader(value, table.file, f"{table.prefix}.{pattern!r}")
        points = rule.number("points", 1.0)
        visibility = rule.get("visibility", str, "visible")
        if visibility not in VISIBILITIES:
            raise rule.error("visibility", f"must be one of {', '.join(VISIBILITIES)}")
        rule.reject_unknown()
        rules.append(TestRule(pattern, points, visibility))
    return tuple(rules)


def _late(table: _Reader) -> LatePolicy:
    tiers = []
    for index, item in enumerate(table.get("tiers", list, [])):
        if not isinstance(item, dict):
            raise table.error(f"tiers[{index}]", "expected { days = N, percent = P }")
        tier = _Reader(item, table.file, f"{table.prefix}.tiers[{index}]")
        tiers.append(LateTier(tier.number("days", 1.0), tier.number("percent", 0.0)))
        tier.reject_unknown()
    policy = LatePolicy(
        grace_minutes=table.number("grace_minutes", 0.0),
        percent_per_day=table.number("percent_per_day", 0.0),
        tiers=tuple(sorted(tiers, key=lambda t: t.days)),
        max_days=table.number("max_days", 0.0),
    )
    if policy.percent_per_day and policy.tiers:
        raise table.error("tiers", "use percent_per_day or tiers, not both")
    table.reject_unknown()
    return policy


def _extensions(table: _Reader) -> dict[str, timedelta]:
    extensions = {}
    for student_id in table.data:
        text = table.get(student_id, str)
        extensions[student_id] = _duration(table, student_id, text)
    return extensions


def _globs(table: _Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = table.get(key, list, list(default))
    if not all(isinstance(v, str) for v in values):
        raise table.error(key, "expected a list of glob strings")
    return tuple(values)


def _lms(table: _Reader) -> dict[str, str]:
    # Each LMS format declares the keys it reads. Imported here, not at the top: the
    # formats read this module's records, and only a course with an lms table needs them.
    if not table.data:
        return {}
    from grader.reports.lms import LMS_SETTINGS

    values = {}
    for key in LMS_SETTINGS:
        value = table.get(key, (str, int, bool))
        if value is not None:
            values[key] = str(value)
    table.reject_unknown()
    return values
