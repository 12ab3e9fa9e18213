"""The Containers API v1.1 over HTTP: routes, authentication, error bodies.

Every ``/api/v1`` route (and the workspace page) needs the token, as the documented
``access_token`` query parameter or as ``Authorization: Bearer``; it is compared in
constant time and never echoed. Errors always have the body ``{message, error_code}``;
framework validation errors become 400 / 10, never 422. The core lives in
``service.Engine``; this module only translates HTTP to it and back.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from grader.engine import pages, schema, views
from grader.engine.forms import Form, FormLimits, check_length, read_form
from grader.engine.guard import TokenGuard
from grader.engine.service import Clock, Engine, NewSubmission, RunFunction, utc_now
from grader.engine.settings import EngineConfig
from grader.engine.workspaces import (
    MAX_PAGE,
    STATE_NAMES,
    decode_page_token,
    encode_page_token,
)
from grader.errors import (
    ApiError,
    IdsFormatError,
    IdsNotProvidedError,
    InvalidRequestError,
    NotFoundError,
    TooManyIdsError,
)

API_PREFIX = "/api/v1"
MAX_IDS = 20
GREETING = "You can use Sphere Engine Containers API."
MEDIA_TYPES = {"source": "application/gzip", "tests_report": "application/json"}
_ID = re.compile(r"[0-9]{1,18}")

FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {
                "schema": {
                    "type": "object",
                    "required": ["project_id"],
                    "properties": {
                        "project_id": {"type": "string"},
                        "scenario": {"type": "string"},
                        "project_config": {"type": "string", "description": "encoded JSON"},
                        "source": {"type": "string", "format": "binary"},
                    },
                }
            }
            for media in ("multipart/form-data", "application/x-www-form-urlencoded")
        },
    }
}


def _errors(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": schema.ErrorBody, "description": text} for status, text in pairs}


UNAUTHORIZED = (401, "unauthorized access (error_code 1)")
INVALID = (400, "invalid request data (error_code 10)")


def create_app(
    config: EngineConfig, *, runner: RunFunction | None = None, clock: Clock | None = None
) -> FastAPI:
    """The engine's ASGI app; its lifespan starts and stops the engine."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = Engine(config, runner=runner, clock=clock or utc_now)
        await engine.start()
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="grader local engine: Sphere Engine Containers API v1.1",
        version="1.1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.include_router(_api_routes(), prefix=API_PREFIX)
    app.include_router(_page_routes())
    app.add_middleware(TokenGuard, token=config.token)
    app.openapi_schema = None
    _document_security(app)
    return app


# --- the API ------------------------------------------------------------------------


def _api_routes() -> APIRouter:
    router = APIRouter(responses=_errors(UNAUTHORIZED))
    router.add_api_route("/test", test, methods=["GET"], response_model=schema.TestAnswer)
    router.add_api_route("/stats", stats, methods=["GET"], response_model=schema.StatsAnswer)
    router.add_api_route(
        "/workspaces",
        list_workspaces,
        methods=["GET"],
        response_model=schema.WorkspaceList,
        responses=_errors(INVALID),
    )
    router.add_api_route(
        "/workspaces",
        create_workspace,
        methods=["POST"],
        status_code=201,
        response_model=schema.WorkspaceCreated,
        openapi_extra=FORM_BODY,
        responses=_errors(INVALID, (409, "no workspace slot is free (error_code 200611)")),
    )
    router.add_api_route(
        "/workspaces/{workspace_id}",
        get_workspace,
        methods=["GET"],
        response_model=schema.WorkspaceModel,
        responses=_errors((404, "not found (1001)")),
    )
    router.add_api_route(
        "/submissions",
        list_submissions,
        methods=["GET"],
        response_model=schema.SubmissionList,
        responses=_errors((400, "no ids (205104), bad ids (205105), over 20 (205106), 10")),
    )
    router.add_api_route(
        "/submissions",
        create_submission,
        methods=["POST"],
        status_code=201,
        response_model=schema.SubmissionCreated,
        openapi_extra=FORM_BODY,
        responses=_errors(INVALID),
    )
    router.add_api_route(
        "/submissions/{submission_id}",
        get_submission,
        methods=["GET"],
        response_model=schema.SubmissionModel,
        responses=_errors((404, "not found (1001)")),
    )
    router.add_api_route(
        "/submissions/{submission_id}/{stream}",
        get_stream,
        methods=["GET"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "the stream's raw bytes"},
            **_errors((404, "submission (1001) or stream (1101) not found")),
        },
    )
    return router


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def test() -> JSONResponse:
    """Check the token: the documented greeting."""
    return JSONResponse({"message": GREETING})


async def stats(request: Request) -> JSONResponse:
    """Workspace slots in all and free."""
    engine = _engine(request)
    engine.sweep()
    slots = {"all": engine.slots.total, "free": engine.slots.free}
    return JSONResponse({"workspace_slots": slots})


async def list_workspaces(
    request: Request,
    project_id: str | None = None,
    states: Annotated[list[int], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    states_brackets: Annotated[list[int], Query(alias="states[]")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
    page_token: str | None = None,
) -> JSONResponse:
    """One page of workspaces, newest first."""
    wanted = [*states, *states_brackets]
    unknown = [s for s in wanted if s not in STATE_NAMES]
    if unknown:
        raise InvalidRequestError(f"invalid request data: no workspace state {unknown[0]}")
    engine = _engine(request)
    engine.sweep()
    page = engine.workspaces.page(
        project_id=project_id, states=wanted, limit=limit, page_token=page_token
    )
    return JSONResponse(views.workspace_page_json(page, engine.config.site_root))


async def create_workspace(request: Request) -> JSONResponse:
    """A new workspace of ``project_id`` (form), holding a slot while it runs."""
    engine = _engine(request)
    form = await _read_form(request, engine.config, None)
    project_id = _required(form.fields, "project_id")
    engine.sweep()
    workspace = engine.workspaces.create(project_id, form.fields.get("project_config"))
    return JSONResponse(
        {
            "message": "Workspace has been created",
            "workspace": views.workspace_json(workspace, engine.config.site_root),
        },
        status_code=201,
    )


async def get_workspace(request: Request, workspace_id: str) -> JSONResponse:
    engine = _engine(request)
    engine.sweep()
    workspace = engine.workspaces.get(workspace_id)
    return JSONResponse(views.workspace_json(workspace, engine.config.site_root))


async def list_submissions(
    request: Request,
    ids: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_IDS)] = 10,
    page_token: str | None = None,
) -> JSONResponse:
    """Up to 20 submissions by id, in the order asked (unknown ids are left out)."""
    wanted = parse_ids(ids)
    offset = decode_page_token(page_token)
    engine = _engine(request)
    found = engine.store.get_submissions(wanted)
    page = found[offset : offset + limit]
    root = engine.config.api_root
    return JSONResponse(
        {
            "items": [views.submission_json(record, root) for record in page],
            "paging": {
                "previous_page_token": encode_page_token(max(0, offset - limit))
                if offset
                else None,
                "next_page_token": (
                    encode_page_token(offset + limit) if offset + limit < len(found) else None
                ),
            },
        }
    )


async def create_submission(request: Request) -> JSONResponse:
    """A new submission: ``project_id``, optional ``source`` (tar.gz), ``scenario``,
    ``project_config``; as multipart or urlencoded form."""
    engine = _engine(request)
    staging = engine.new_staging()
    try:
        form = await _read_form(request, engine.config, staging / "streams" / "source")
        project_id = _required(form.fields, "project_id")
    except BaseException:
        engine.trash.discard(staging)
        raise
    new = NewSubmission(
        project_id=project_id,
        scenario=form.fields.get("scenario") or None,
        project_config=form.fields.get("project_config"),
        staging=staging,
        has_source=form.file_size is not None,
    )
    submission_id = await engine.create_submission(new)
    return JSONResponse(
        {"message": "Submission has been created", "id": submission_id}, status_code=201
    )


async def get_submission(request: Request, submission_id: int) -> JSONResponse:
    engine = _engine(request)
    record = engine.submission(submission_id)
    return JSONResponse(views.submission_json(record, engine.config.api_root))


async def get_stream(request: Request, submission_id: int, stream: str) -> Response:
    """A stream's raw bytes; the reference's stage names are accepted too."""
    engine = _engine(request)
    name, path = engine.stream_file(submission_id, stream)
    media = MEDIA_TYPES.get(name, "text/plain; charset=utf-8")
    size = engine.store.stream_size(submission_id, name)
    return StreamingResponse(
        engine.read_file(path), media_type=media, headers={"Content-Length": str(size)}
    )


def parse_ids(raw: str | None) -> list[int]:
    """``ids=1,2,3`` -> [1, 2, 3] (duplicates dropped), with the documented error codes."""
    if raw is None or not raw.strip():
        raise IdsNotProvidedError("identifiers are not provided")
    parts = [part.strip() for part in raw.split(",")]
    if not all(_ID.fullmatch(part) for part in parts):
        raise IdsFormatError("invalid format of identifiers: expected numbers separated by commas")
    ids = list(dict.fromkeys(int(part) for part in parts))
    if len(ids) > MAX_IDS:
        raise TooManyIdsError(
            f"maximum number of identifiers exceeded: {len(ids)} given, at most {MAX_IDS}"
        )
    return ids


async def _read_form(request: Request, config: EngineConfig, file_path: Path | None) -> Form:
    limits = FormLimits(config.max_upload_bytes, config.max_field_bytes)
    check_length(request.headers.get("content-length"), limits)
    return await read_form(
        request.headers.get("content-type"),
        request.stream(),
        limits,
        file_field="source" if file_path is not None else None,
        file_path=file_path,
    )


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise InvalidRequestError(f"invalid request data: {name} is required")
    return value


# --- the workspace page ---------------------------------------------------------------


def _page_routes() -> APIRouter:
    router = APIRouter()
    router.add_api_route(
        "/workspace/{workspace_id}", workspace_page, methods=["GET"], response_class=HTMLResponse
    )
    return router


async def workspace_page(request: Request, workspace_id: str) -> HTMLResponse:
    """A read-only page of the workspace's project files and the project's last result."""
    engine = _engine(request)
    engine.sweep()
    workspace = engine.workspaces.touch(workspace_id)
    project_dir = engine.config.projects_dir / workspace.project_id
    files, truncated = await engine.offload(pages.project_files, project_dir)
    last = engine.store.latest_finished(workspace.project_id)
    result = None
    if last is not None:
        report = engine.store.stream_path(last.id, "tests_report")
        result = pages.result_view(last, report if "tests_report" in last.streams else None)
    html = pages.render_workspace(workspace, files, truncated=truncated, result=result)
    return HTMLResponse(html)


# --- errors ---------------------------------------------------------------------------


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    body = views.error_json(exc.api_message, exc.error_code or 0)
    return JSONResponse(body, status_code=exc.http_status or 400)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    if any(problem.get("loc", ("",))[0] == "path" for problem in problems):
        # A path id that is not a number names nothing that exists.
        return JSONResponse(views.error_json("not found", NotFoundError.error_code or 0), 404)
    # Name the parameter and the rule, never the value (it could be anything).
    text = "; ".join(
        f"{'.'.join(str(part) for part in problem.get('loc', ())[1:])}: {problem.get('msg')}"
        for problem in problems
    )
    code = InvalidRequestError.error_code or 0
    return JSONResponse(views.error_json(f"invalid request data: {text}", code), 400)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        body = views.error_json(f"not found: {request.method} {request.url.path}", 1001)
    elif exc.status_code == 405:
        body = views.error_json(f"method {request.method} not allowed here", 10)
    else:
        body = views.error_json(str(exc.detail), 10)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _document_security(app: FastAPI) -> None:
    """Describe the token (query parameter or bearer) in the OpenAPI document."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = plain()
            components = document.setdefault("components", {})
            components["securitySchemes"] = {
                "access_token": {"type": "apiKey", "in": "query", "name": "access_token"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
            document["security"] = [{"access_token": []}, {"bearer": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
