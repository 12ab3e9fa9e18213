"""Projects on disk and their ``config.json`` (version 2.1) turned into run specs.

A project is a subfolder of ``projects_dir`` named by its id, holding ``config.json`` and
the project's files. Finding a project is I/O (``find_project``); everything after the
config's text is read is pure (``resolve_scenario``, ``build_run_spec``) and raises
``ConfigError`` naming the file and the dotted key at fault, which the engine turns into
status 22 with the message in ``debug_log``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from grader.engine.spec import STAGE_ORDER, Limits, RunSpec, StageSpec
from grader.errors import ConfigError, CreationFailedError

CONFIG_FILE = "config.json"
CONFIG_VERSION = 2.1
MAX_CONFIG_BYTES = 1024 * 1024
MAX_STAGE_TIMEOUT = 24 * 3600.0  # seconds; anything longer is a typo, not a plan
PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

LIMIT_KEYS = ("memory_mb", "processes", "output_bytes", "disk_mb", "open_files", "file_size_mb")
"""The integer keys of a scenario's local-only ``limits`` table (besides the path lists)."""
PATH_KEYS = ("read_only_paths", "private_paths")


@dataclass(frozen=True)
class Project:
    """A project folder. ``config_text`` is None when config.json cannot be read."""

    id: str
    directory: Path
    config_text: str | None
    problem: str | None = None  # why config_text is None

    @property
    def name(self) -> str:
        return self.id


@dataclass(frozen=True)
class Scenario:
    """One scenario of a project config, validated."""

    name: str
    stages: tuple[StageSpec, ...]
    network: bool = False
    read_only: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)


def find_project(projects_dir: Path, project_id: str) -> Project:
    """The project folder ``project_id``, or CreationFailedError (400/1003) naming it."""
    if not PROJECT_ID.fullmatch(project_id):
        raise CreationFailedError(
            f"project {project_id[:80]!r} does not exist (ids are letters, digits, '_', '.', '-')"
        )
    directory = projects_dir / project_id
    if not directory.is_dir():
        raise CreationFailedError(f"project {project_id!r} does not exist")
    path = directory / CONFIG_FILE
    try:
        with path.open("rb") as fp:
            raw = fp.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        return Project(project_id, directory, None, f"{path}: cannot be read: {exc.strerror}")
    if len(raw) > MAX_CONFIG_BYTES:
        return Project(project_id, directory, None, f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return Project(project_id, directory, raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Project(project_id, directory, None, f"{path}: not UTF-8 text")


def parse_config(text: str, *, source: str) -> Mapping[str, Any]:
    """The config's JSON object, with its version checked."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", file=source
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError("must be a JSON object", file=source)
    version = data.get("version", CONFIG_VERSION)
    if version not in (CONFIG_VERSION, str(CONFIG_VERSION)) or isinstance(version, bool):
        raise ConfigError(f"version must be {CONFIG_VERSION}, not {version!r}", file=source)
    return data


def resolve_scenario(text: str, requested: str | None, *, source: str) -> Scenario:
    """The scenario ``requested`` (else the one marked default) of a config's text."""
    data = parse_config(text, source=source)
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, dict) or not scenarios:
        raise ConfigError(
            "must be an object with at least one scenario", file=source, where="scenarios"
        )
    name = requested if requested is not None else _default_scenario(scenarios, source)
    if name not in scenarios:
        known = ", ".join(sorted(map(str, scenarios)))
        raise ConfigError(
            f"no scenario {name!r} (the project has: {known})", file=source, where="scenarios"
        )
    body = scenarios[name]
    where = f"scenarios.{name}"
    if not isinstance(body, dict):
        raise ConfigError("must be an object", file=source, where=where)
    files = data.get("files", {})
    if not isinstance(files, dict):
        raise ConfigError("must be an object", file=source, where="files")
    return Scenario(
        name=name,
        stages=_stages(body.get("stages", {}), source, f"{where}.stages"),
        network=_bool(body, "network", False, source, where),
        read_only=_relative_paths(files.get("read_only", []), source, "files.read_only"),
        limits=_limits(body.get("limits", {}), source, f"{where}.limits"),
    )


def build_run_spec(
    submission_id: int, project: Project, scenario: Scenario, *, upload_dir: Path, work_dir: Path
) -> RunSpec:
    """The runner's input for one submission of ``project`` under ``scenario``."""
    return RunSpec(
        submission_id=submission_id,
        project_id=project.id,
        project_dir=project.directory.resolve(),
        upload_dir=upload_dir,
        work_dir=work_dir,
        stages=scenario.stages,
        read_only=scenario.read_only,
        network=scenario.network,
        limits=scenario.limits,
    )


def _default_scenario(scenarios: Mapping[str, Any], source: str) -> str:
    marked = [n for n, body in scenarios.items() if isinstance(body, dict) and body.get("default")]
    if len(marked) == 1:
        return marked[0]
    if not marked:
        raise ConfigError(
            'no scenario is marked "default": true and the submission named none',
            file=source,
            where="scenarios",
        )
    raise ConfigError(
        f"more than one default scenario: {', '.join(sorted(marked))}",
        file=source,
        where="scenarios",
    )


def _stages(raw: Any, source: str, where: str) -> tuple[StageSpec, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("must be an object", file=source, where=where)
    unknown = sorted(set(raw) - set(STAGE_ORDER))
    if unknown:
        raise ConfigError(
            f"unknown stage {unknown[0]!r} (stages are {', '.join(STAGE_ORDER)})",
            file=source,
            where=where,
        )
    return tuple(_stage(name, raw.get(name), source, f"{where}.{name}") for name in STAGE_ORDER)


def _stage(name: str, raw: Any, source: str, where: str) -> StageSpec:
    if raw is None:
        return StageSpec(name, None)
    if not isinstance(raw, dict):
        raise ConfigError("must be an object", file=source, where=where)
    command = raw.get("command")
    if command is not None and not isinstance(command, str):
        raise ConfigError("must be a string or null", file=source, where=f"{where}.command")
    timeout = raw.get("timeout")
    if timeout is None:
        return StageSpec(name, command or None, skip=_bool(raw, "skip", False, source, where))
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_STAGE_TIMEOUT
    ):
        raise ConfigError(
            f"must be a number of seconds above 0 and at most {MAX_STAGE_TIMEOUT:g}, "
            f"not {timeout!r}",
            file=source,
            where=f"{where}.timeout",
        )
    return StageSpec(
        name, command or None, float(timeout), _bool(raw, "skip", False, source, where)
    )


def _bool(raw: Mapping[str, Any], key: str, default: bool, source: str, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(
            f"must be true or false, not {value!r}", file=source, where=f"{where}.{key}"
        )
    return value


def _relative_paths(raw: Any, source: str, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError("must be a list of paths", file=source, where=where)
    paths = []
    for index, item in enumerate(raw):
        path = PurePosixPath(item) if isinstance(item, str) else None
        if path is None or not item or path.is_absolute() or ".." in path.parts:
            raise ConfigError(
                f"must be a path inside the workspace, not {item!r}",
                file=source,
                where=f"{where}[{index}]",
            )
        paths.append(str(path))
    return tuple(paths)


def _limits(raw: Any, source: str, where: str) -> Limits:
    if not isinstance(raw, dict):
        raise ConfigError("must be an object", file=source, where=where)
    unknown = sorted(set(raw) - {*LIMIT_KEYS, *PATH_KEYS})
    if unknown:
        raise ConfigError(
            f"unknown limit {unknown[0]!r} (limits are {', '.join((*LIMIT_KEYS, *PATH_KEYS))})",
            file=source,
            where=where,
        )
    values: dict[str, Any] = {}
    for key in LIMIT_KEYS:
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"must be a whole number above 0, not {value!r}",
                    file=source,
                    where=f"{where}.{key}",
                )
            values[key] = value
    if "read_only_paths" in raw:
        values["read_only_paths"] = _host_paths(
            raw["read_only_paths"], source, f"{where}.read_only_paths"
        )
    if "private_paths" in raw:
        values["private_paths"] = _workspace_paths(
            raw["private_paths"], source, f"{where}.private_paths"
        )
    return Limits(**values)


def _workspace_paths(raw: Any, source: str, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError("must be a list of workspace paths", file=source, where=where)
    paths = []
    for index, item in enumerate(raw):
        path = PurePosixPath(item) if isinstance(item, str) else None
        if path is None or path.is_absolute() or ".." in path.parts or str(path) in ("", "."):
            raise ConfigError(
                f"must be a path inside the workspace (relative, no '..'), not {item!r}",
                file=source,
                where=f"{where}[{index}]",
            )
        paths.append(str(path))
    return tuple(paths)


def _host_paths(raw: Any, source: str, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError("must be a list of absolute paths", file=source, where=where)
    paths = []
    for index, item in enumerate(raw):
        path = PurePosixPath(item) if isinstance(item, str) else None
        if path is None or not path.is_absolute() or ".." in path.parts:
            raise ConfigError(
                f"must be an absolute path without '..', not {item!r}",
                file=source,
                where=f"{where}[{index}]",
            )
        paths.append(str(path))
    return tuple(paths)
