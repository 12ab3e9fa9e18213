"""The jinja2 environment for everything people read, and safe text for Markdown.

Templates live in the repository's top-level ``templates/`` folder, which the wheel ships
as ``grader/_templates``: an installed grader reads them from the package, a checkout
(editable install, tests) from ``templates/``. HTML templates (``*.html.j2``) are
autoescaped; Markdown templates escape student text with the ``md`` and ``fence``
filters. Undefined names are errors, never empty strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import jinja2

import grader
from grader.errors import GraderError

PACKAGED = "_templates"  # pyproject.toml force-includes templates/ here in the wheel
CHECKOUT = "templates"
PROBE = "feedback.md.j2"  # a template every installation has

# Characters that start inline markup anywhere (emphasis, code, links, HTML, entities,
# tables, strikethrough, math); and what starts a block when it opens a line.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~$])")
_MD_BLOCK_START = re.compile(r"^([#+\-=>]|\d+[.)])")
_BACKTICK_RUNS = re.compile(r"`+")


def template_dir() -> Path:
    """The installed package's templates, else the checkout's ``templates/``."""
    package = Path(grader.__file__).resolve().parent
    candidates = (package / PACKAGED, package.parent / CHECKOUT)
    for candidate in candidates:
        if (candidate / PROBE).is_file():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise GraderError(f"grader's templates are missing (looked in {tried}): reinstall grader")


@lru_cache(maxsize=4)
def environment(directory: Path | None = None) -> jinja2.Environment:
    """The one jinja2 environment (per template folder): strict, escaped, deterministic.

    Two threads asking for it first at once may each make one: a thread that compiles
    templates ahead (``compile_templates``) starts after it exists."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory or template_dir()),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=True, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = markdown_inline
    env.filters["fence"] = markdown_block
    return env


def compile_templates() -> None:
    """Compile every template now; the environment keeps them. A run calls this while the
    engine still works, so writing its outputs at the end compiles nothing."""
    env = environment()
    for name in env.list_templates(extensions=("j2",)):
        env.get_template(name)


def render(template: str, **context: object) -> str:
    """Render one template by name with ``context``."""
    return environment().get_template(template).render(**context)


def write_rendered(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` unless the file holds exactly that already: a run that
    changed nothing rewrites none of its hundreds of pages (each rewrite is a truncation
    the file system flushes)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    path.write_bytes(data)


class PageViews:
    """The view each page was written from in this process, by path.

    A page rendered from an equal view holds the same bytes: ``grader grade`` writes each
    student's pages as their result comes in, and the outputs written at the end of the
    run neither render nor write again the ones whose view has not changed since.
    """

    def __init__(self) -> None:
        self._views: dict[Path, object] = {}

    def unchanged(self, path: Path, view: object) -> bool:
        return path in self._views and self._views[path] == view

    def note(self, path: Path, view: object) -> None:
        self._views[path] = view


def render_page(template: str, view: object) -> bytes:
    """A page's bytes: ``template`` rendered with ``view``, in UTF-8."""
    return render(template, view=view).encode("utf-8")


def write_view(
    path: Path, view: object, to_bytes: Callable[[], bytes], pages: PageViews | None
) -> None:
    """``write_rendered(path, to_bytes())`` unless ``pages`` saw ``view`` written there."""
    if pages is not None and pages.unchanged(path, view):
        return
    write_rendered(path, to_bytes())
    if pages is not None:
        pages.note(path, view)


def markdown_inline(text: object) -> str:
    """Text that Markdown shows literally on one line: markup characters backslash-escaped."""
    flat = " ".join(str(text).split())
    escaped = _MD_SPECIAL.sub(r"\\\1", flat)
    return _MD_BLOCK_START.sub(lambda m: _escape_block_start(m.group(1)), escaped)


def markdown_block(text: object, info: str = "text") -> str:
    """A fenced code block that no content can close early.

    The fence is one backtick longer than the longest run of backticks in the text, so a
    message containing ``` stays inside (CommonMark closes a fence only with one at least
    as long).
    """
    body = str(text).replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    longest = max((len(run) for run in _BACKTICK_RUNS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _escape_block_start(opening: str) -> str:
    """'#' -> '\\#', '12.' -> '12\\.': the line can no longer open a heading or a list."""
    return opening[:-1] + "\\" + opening[-1]
