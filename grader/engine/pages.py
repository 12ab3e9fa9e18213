"""The read-only HTML page behind a workspace's ``workspace_url``.

It shows the workspace, its project's files (small text files inline) and the last
finished submission of the project with its tests report. Rendering is jinja2 with
autoescape and StrictUndefined; the same records give the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from grader.api.models import STATUS_NAMES
from grader.engine.store import SubmissionRecord, WorkspaceRecord
from grader.engine.views import api_date
from grader.engine.workspaces import STATE_NAMES

MAX_LISTED_FILES = 500
MAX_SHOWN_BYTES = 64 * 1024
MAX_REPORT_BYTES = 1024 * 1024

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Workspace {{ workspace.id }} ({{ workspace.project_id }})</title>
<style>
body { font-family: sans-serif; margin: 2em; }
pre { background: #f4f4f4; padding: 0.5em; overflow-x: auto; }
td, th { padding: 0.2em 0.8em; text-align: left; }
</style>
</head>
<body>
<h1>Workspace of project {{ workspace.project_id }}</h1>
<table>
<tr><th>id</th><td>{{ workspace.id }}</td></tr>
<tr><th>state</th><td>{{ state }}</td></tr>
<tr><th>created</th><td>{{ created }}</td></tr>
<tr><th>last used</th><td>{{ last_usage or "never" }}</td></tr>
<tr><th>terminated</th><td>{{ terminated or "no" }}</td></tr>
<tr><th>lifetime</th><td>{{ workspace.lifetime }} minutes</td></tr>
</table>
<h2>Last result</h2>
{% if result %}
<p>Submission {{ result.id }} of {{ result.date }}: <strong>{{ result.status }}</strong>
{% if result.score is not none %}, score {{ result.score }}{% endif %}</p>
{% if result.tests %}
<table>
<tr><th>test</th><th>status</th><th>time</th></tr>
{% for test in result.tests %}
<tr><td>{{ test.name }}</td><td>{{ test.status }}</td><td>{{ test.time }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% else %}
<p>No submission of this project has finished yet.</p>
{% endif %}
<h2>Project files</h2>
{% if truncated %}<p>Only the first {{ files | length }} files are listed.</p>{% endif %}
{% for file in files %}
<h3>{{ file.path }} <small>({{ file.size }} bytes)</small></h3>
{% if file.text is not none %}<pre>{{ file.text }}</pre>{% endif %}
{% endfor %}
</body>
</html>
"""

_env = Environment(
    loader=DictLoader({"workspace.html": PAGE}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class ProjectFile:
    path: str
    size: int
    text: str | None  # None: binary or too large to show


@dataclass(frozen=True)
class TestLine:
    __test__ = False  # not a pytest class

    name: str
    status: str
    time: str


@dataclass(frozen=True)
class ResultView:
    id: int
    date: str
    status: str
    score: float | None
    tests: tuple[TestLine, ...]


def project_files(
    project_dir: Path, limit: int = MAX_LISTED_FILES
) -> tuple[list[ProjectFile], bool]:
    """The project's regular files in path order (links are not followed); truncated?"""
    if not project_dir.is_dir():
        return [], False
    found: list[Path] = []
    for folder, dirs, names in os.walk(project_dir, followlinks=False):
        dirs.sort()
        found.extend(Path(folder) / name for name in sorted(names))
    found.sort(key=lambda p: p.relative_to(project_dir).as_posix())
    files = []
    for path in found[:limit]:
        if path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        files.append(ProjectFile(path.relative_to(project_dir).as_posix(), size, _text(path, size)))
    return files, len(found) > limit


def result_view(record: SubmissionRecord, tests_report: Path | None) -> ResultView:
    """The last result as the page shows it."""
    return ResultView(
        id=record.id,
        date=api_date(record.created_at) or "",
        status=STATUS_NAMES.get(record.status, f"status {record.status}"),
        score=record.score,
        tests=_tests(tests_report),
    )


def render_workspace(
    workspace: WorkspaceRecord,
    files: Sequence[ProjectFile],
    *,
    truncated: bool,
    result: ResultView | None,
) -> str:
    """The page's HTML."""
    return _env.get_template("workspace.html").render(
        workspace=workspace,
        state=STATE_NAMES.get(workspace.state, "unknown"),
        created=api_date(workspace.created_at),
        last_usage=api_date(workspace.last_usage),
        terminated=api_date(workspace.terminated_at),
        files=list(files),
        truncated=truncated,
        result=result,
    )


def _text(path: Path, size: int) -> str | None:
    if size > MAX_SHOWN_BYTES:
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _tests(report: Path | None) -> tuple[TestLine, ...]:
    if report is None or not report.is_file() or report.stat().st_size > MAX_REPORT_BYTES:
        return ()
    try:
        data: Any = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(
        TestLine(str(item.get("name", "")), str(item.get("status", "")), str(item.get("time", "")))
        for item in data
        if isinstance(item, dict)
    )
