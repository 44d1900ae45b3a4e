"""The dashboard: HTML pages at `/` (runs) and `/ui/runs/{id}` (a run), served by the API's own
process with the API's tokens.

A browser logs in once with a token (POST /ui/login; `reviewflow ui` puts a fresh one-time
token in the URL fragment, which never reaches a server log) and then holds an HttpOnly,
SameSite=Strict session cookie. Its pages call the JSON API with that cookie; every write also
carries the session's CSRF token (auth.Sessions). Pages are Jinja2 templates with autoescaping
and no inline script: the JavaScript is served as files from static/ (with the vendored
libraries in static/vendor/), so the Content-Security-Policy allows scripts from 'self' only.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..states import TaskState
from ..store import RunRecord
from .auth import SESSION_COOKIE, Session, Sessions, Token, can_read, same_origin, session_of
from .context import RunIdParam, ServerContext, blocking, context, load_run
from .http import ApiError, Json
from .runs import TaskName
from .ui_graph import attempts_of, build_graph, state_styles
from .ui_ops import RANGES, metrics_doc, workers_doc
from .ui_review import REPORTS, NoReport, own_folder, read_report, review_doc
from .ui_timeline import last_event_id, run_head, task_events, task_row, task_states, timeline

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)
Ctx = Annotated[ServerContext, Depends(context)]
Reader = Annotated[Token, Depends(can_read)]
RunId = Annotated[str, RunIdParam]


class SecurityHeaders:
    """CSP and friends on the dashboard's pages and files and on /docs (the JSON API keeps its
    headers).

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware would pass every response of the
    app, the runs' event streams included, through an extra task and memory stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path in ("/", "/docs") or path.startswith("/ui/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
                if not path.startswith("/ui/static/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)


def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def _page(request: Request, name: str, **values: Any) -> HTMLResponse:
    session = session_of(request)
    if session is None:
        name, values = "login.html", {}
    env = request.app.state.ui_templates
    html = env.get_template(name).render(
        session=session,
        csrf=session.csrf if session else "",
        read_only=session.token.read_only if session else True,
        **values,
    )
    return HTMLResponse(html)


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    return _page(request, "runs.html", page="runs")


@router.get("/ui/workers", response_class=HTMLResponse)
def workers_page(request: Request) -> HTMLResponse:
    return _page(request, "workers.html", page="workers")


@router.get("/ui/metrics", response_class=HTMLResponse)
def metrics_page(request: Request) -> HTMLResponse:
    return _page(request, "metrics.html", page="metrics", ranges=list(RANGES))


@router.get("/ui/api/workers")
async def workers_api(ctx: Ctx, _: Reader) -> Json:
    """Live (and recently lost) workers of a PostgreSQL database, with their running tasks."""
    return Json(await blocking(workers_doc, ctx.store))


@router.get("/ui/api/metrics")
async def metrics_api(
    ctx: Ctx,
    _: Reader,
    range: Annotated[Literal["1h", "6h", "24h", "7d"], Query()] = "1h",
    workflow: Annotated[str | None, Query(max_length=200)] = None,
) -> Json:
    """Time-bucketed task and run metrics computed in the database (ui_ops.metrics_doc)."""
    return Json(await blocking(metrics_doc, ctx.store, range, workflow or None))


@router.get("/docs", response_class=HTMLResponse)
def docs_page(request: Request) -> HTMLResponse:
    """The API reference (Swagger UI, vendored: no CDN), open like /openapi.json it reads."""
    html = request.app.state.ui_templates.get_template("docs.html").render()
    return HTMLResponse(html)


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: RunId) -> HTMLResponse:
    return _page(request, "run.html", run_id=run_id, page="runs")


@router.post("/ui/login", status_code=204)
def login(request: Request, token: Annotated[str, Body(embed=True, max_length=500)]) -> Response:
    """Exchange a token for a session cookie (the token is in the body: never in a URL)."""
    if not same_origin(request):
        raise ApiError(403, "cross-origin login refused", None)
    sessions: Sessions = request.app.state.ui_sessions
    found = sessions.login(request.app.state.rf.tokens, token.strip())
    if found is None:
        raise ApiError(401, "unknown token", "token")
    sid, session = found
    response = Response(status_code=204)
    _set_cookie(request, response, sid, session)
    return response


def _set_cookie(request: Request, response: Response, sid: str, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.post("/ui/logout", status_code=204)
def logout(request: Request) -> Response:
    if not same_origin(request):  # another site must not end a user's session
        raise ApiError(403, "cross-origin logout refused", None)
    request.app.state.ui_sessions.logout(request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/ui/api/runs/{run_id}/graph")
async def run_graph(run_id: RunId, ctx: Ctx, _: Reader) -> Json:
    return Json(await blocking(_graph_doc, ctx, run_id))


SPECS_KEPT = 4
_specs: OrderedDict[tuple[int, str, float], dict[str, Any]] = OrderedDict()
_specs_lock = threading.Lock()  # the worker threads of `blocking` share the cache


def _spec(ctx: ServerContext, record: RunRecord) -> dict[str, Any]:
    """The run's spec, parsed: a run's spec never changes, and reading and parsing a
    10,000-task one (4.4 MB) costs more than everything else the run page and its task panel
    read; the last SPECS_KEPT parsed specs are kept (per store). `record` may come without
    its spec (run_head): the spec is read only when it is not kept."""
    key = (id(ctx.store), record.run_id, record.created_at)
    with _specs_lock:  # held while parsing: the page's requests arrive together, one parses
        if key in _specs:
            _specs.move_to_end(key)
            return _specs[key]
        text = record.spec or load_run(ctx.store, record.run_id).spec
        spec: dict[str, Any] = json.loads(text)
        _specs[key] = spec
        while len(_specs) > SPECS_KEPT:
            _specs.popitem(last=False)
    return spec


def _graph_doc(ctx: ServerContext, run_id: str) -> dict[str, Any]:
    # Events first: a transition between the two reads is then in the tasks' states and
    # replayed (harmlessly) from the stream, never counted as seen but not shown.
    last = last_event_id(ctx.store, run_id)
    record = run_head(ctx.store, run_id)
    tasks = task_states(ctx.store, run_id)
    graph = build_graph(_spec(ctx, record), tasks)
    return {
        "run": {
            "run_id": record.run_id,
            "workflow": record.workflow,
            "state": record.state,
            "meta": record.meta,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "error": record.error,
        },
        "last_event_id": last,
        "styles": state_styles(),
        **graph,
    }


NEEDS_SHOWN = 20


@router.get("/ui/api/runs/{run_id}/tasks/{task}")
async def task_detail(run_id: RunId, task: TaskName, ctx: Ctx, _: Reader) -> Json:
    return Json(await blocking(_task_doc, ctx, run_id, task))


def _task_doc(ctx: ServerContext, run_id: str, task: str) -> dict[str, Any]:
    record = run_head(ctx.store, run_id)  # the spec is kept parsed: not read per click
    row = task_row(ctx.store, run_id, task)  # one row and one task's events, not the run's
    if row is None:
        raise ApiError(404, f"run {run_id} has no task {task!r}", "task")
    spec = _spec(ctx, record)
    body = spec.get("tasks", {}).get(task) or spec.get("on_failure", {}).get(task) or {}
    result = json.loads(row.result) if row.result else None
    errors = json.loads(row.errors) if row.errors else []
    attempts = attempts_of(task_events(ctx.store, run_id, task), task)
    by_number = {e.get("attempt"): e.get("error") for e in errors if isinstance(e, dict)}
    for a in attempts:
        a["error"] = by_number.get(a["attempt"])
        a["exit_code"] = _exit_code(a["error"] or a["detail"] or "")
    if isinstance(result, dict) and attempts:
        last = attempts[-1]
        for key in ("exit_code", "cpu_s", "max_rss_kib"):
            last[key] = result.get(key)
    approval = None
    if body.get("type") == "approval":
        rec = ctx.store.get_approval(run_id, task)
        approval = {
            "waiting": row.state == TaskState.RUNNING and (rec is None or rec.decision is None),
            "decision": rec.decision if rec else None,
            "approver": rec.approver if rec else None,
            "comment": rec.comment if rec else None,
        }
    needs = body.get("needs") or []
    return {
        "name": row.name,
        "state": row.state,
        "type": body.get("type", "python"),
        "needs": needs[:NEEDS_SHOWN],  # a fan-in after 10,000 shards names them all
        "needs_total": len(needs),
        "attempts": attempts,
        "wait_reason": row.wait_reason,
        "error": row.error,
        "result": result,
        "approval": approval,
    }


@router.get("/ui/api/runs/{run_id}/timeline")
async def run_timeline(run_id: RunId, ctx: Ctx, _: Reader) -> Json:
    """The run's attempts as bars (at most ui_timeline.TIMELINE_LIMIT of them)."""
    await blocking(run_head, ctx.store, run_id)
    return Json(await blocking(timeline, ctx.store, run_id))


@router.get("/ui/api/runs/{run_id}/review")
async def run_review(run_id: RunId, ctx: Ctx, _: Reader) -> Json:
    """A review run's verdict and findings (from its report.json); {review: false} otherwise."""
    record = await blocking(run_head, ctx.store, run_id)

    def doc() -> dict[str, Any]:
        try:
            spec = _spec(ctx, record)
        except ValueError:
            return {"review": False}
        return review_doc(record, ctx.work_dir, spec)

    return Json(await blocking(doc))


ReportName = Literal["report.md", "report.json", "report.sarif"]


@router.get("/ui/runs/{run_id}/reports/{name}")
async def run_report(run_id: RunId, name: ReportName, ctx: Ctx, _: Reader) -> Response:
    """One of the three reports of a review run, from the run's own output folder (the URL
    names a file, never a path: see ui_review)."""
    record = await blocking(run_head, ctx.store, run_id)

    def read() -> bytes:
        return read_report(own_folder(record, ctx.work_dir, _spec(ctx, record)), name)

    try:
        data = await blocking(read)
    except NoReport:
        raise ApiError(404, f"run {run_id} has no {name}", "name") from None
    headers = {"Content-Disposition": f'inline; filename="{run_id}-{name}"'}
    return Response(data, media_type=REPORTS[name], headers=headers)


_EXIT = re.compile(r"\b(?:exit code (-?\d+)|killed by signal (\d+))")


def _exit_code(message: str) -> int | None:
    """A failed shell attempt's exit code, from its error ("exit code 3 (log: ...)"): the
    store keeps the result (with exit_code) of successful attempts only."""
    match = _EXIT.search(message)
    if match is None:
        return None
    return int(match[1]) if match[1] is not None else -int(match[2])


def install(app: FastAPI, once_tokens: list[str] | None = None) -> None:
    """Add the dashboard to the API app: pages, login, the graph and task views, files."""
    app.state.ui_sessions = Sessions(once_tokens or ())
    app.state.ui_templates = _templates()
    app.add_middleware(SecurityHeaders)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
