"""The app factory: `create_app(store, tokens=..., webhook_secret=...)` builds the HTTP API.

With `execute=True` (the embedded mode) the app hosts an Engine on its event loop: runs
submitted through the API (or a webhook) start executing at once, one asyncio task each; at
startup it carries on the runs no live process executes; at shutdown it interrupts its attempts
and leaves the runs resumable. With `execute=False` it only stores runs, for workers to execute.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..engine import DEFAULT_CONCURRENCY, DEFAULT_RUNS_DIR, Engine
from ..errors import ReviewflowError
from ..github_app import have_credentials
from ..logs import log
from ..notify.deliver import Deliverer
from ..notify.targets import NotificationTarget, check_url
from ..store import Store
from ..store.postgres import PostgresStore
from ..version import __version__
from . import control, runs, ui, webhooks
from . import schedules as schedules_api
from .auth import Token, TokenSet, parse_tokens
from .context import PARSE_TIMEOUT, ServerContext
from .http import DEFAULT_MAX_BODY, BodyLimit, Json, install_handlers
from .metrics import EventFollower, Metrics
from .schemas import Health, Readiness

DEFAULT_WORK_DIR = Path(".reviewflow") / "work"
READY_PROBE = "__ready_probe__"
FOLLOW_INTERVAL = 1.0
"""Seconds between reads of new events for the metrics of runs executed by workers."""

DESCRIPTION = """\
The reviewflow HTTP API: a thin layer over the engine and the store, as the CLI is.
Every route except /health, /ready, /metrics and the webhook (which is signed instead) needs
`Authorization: Bearer <token>`; read-only tokens may not change anything. Errors are JSON
`{"error": ..., "field": ...}`. See docs/api.md.
"""


async def _follow_events(
    store: PostgresStore, metrics: Metrics, interval: float = FOLLOW_INTERVAL
) -> None:
    """Metrics of runs executed by workers, from their events (see EventFollower)."""
    follower: EventFollower | None = None
    with contextlib.suppress(ReviewflowError):
        follower = EventFollower(store, metrics)  # before the first request is served
    while True:
        try:
            if follower is None:
                follower = await asyncio.to_thread(EventFollower, store, metrics)
            await asyncio.to_thread(follower.poll)
        except ReviewflowError as exc:
            log.warning("server.metrics_events_failed", error=str(exc))
        await asyncio.sleep(interval)


def create_app(
    store: Store,
    *,
    tokens: Iterable[str | Token] | TokenSet,
    webhook_secret: str | bytes | None = None,
    execute: bool = True,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    work_dir: str | Path = DEFAULT_WORK_DIR,
    max_body: int = DEFAULT_MAX_BODY,
    concurrency: int = DEFAULT_CONCURRENCY,
    webhook_template: str = "pr",
    webhook_repos: Iterable[str] = (),
    resume_orphans: bool = True,
    sse_poll: float = 0.2,
    sse_keepalive: float = 15.0,
    sse_max: float | None = 3600.0,
    reviewflow_cmd: list[str] | None = None,
    engine_options: dict[str, Any] | None = None,
    parse_timeout: float = PARSE_TIMEOUT,
    ui_login_once: Iterable[str] = (),
    notifications: Iterable[NotificationTarget] = (),
    public_url: str | None = None,
    github_post_back: bool | None = None,
    github_api_url: str | None = None,
    schedules: bool = True,
) -> FastAPI:
    """The API over `store`. `tokens`: entries `TOKEN` / `ro:TOKEN` (or parsed Tokens).

    Event streams poll every `sse_poll` s, send a keep-alive comment after `sse_keepalive` s
    of silence and close after `sse_max` s (clients reconnect with Last-Event-ID).
    `reviewflow_cmd` is how review runs call reviewflow (default: this interpreter's
    `-m reviewflow` when this server executes runs, else `reviewflow` on the workers' PATH).
    A workflow that takes longer than `parse_timeout` s to read is refused (422).
    The dashboard is served at `/`; `ui_login_once` are read-write tokens a browser may log in
    with once each (`reviewflow ui`), not API tokens.
    `notifications` are added to every run this server creates; `public_url` (this server's
    address as people reach it) makes notifications link to the run's page. The server delivers
    notifications of any run of its store (reviewflow.notify.deliver).
    Review runs started by a webhook or POST /reviews post their result back to GitHub (check
    run, PR comment) when `github_post_back` is true — by default when GitHub credentials are
    in the environment (GITHUB_TOKEN or a GitHub App); `public_url` (this server as users reach
    it) makes the check's Details link point at the run's page.
    With `schedules`, the server fires the store's schedules (reviewflow.schedules), like any
    other scheduler sharing the database: each slot starts one run.
    """
    if not isinstance(tokens, TokenSet):
        items = list(tokens)
        strings = [t for t in items if isinstance(t, str)]
        tokens = TokenSet([*parse_tokens(strings), *(t for t in items if isinstance(t, Token))])
    secret = webhook_secret.encode() if isinstance(webhook_secret, str) else webhook_secret
    runs_path = Path(runs_dir)
    defaults: dict[str, Any] = {"targets": [t.stored() for t in notifications]}
    if public_url:
        defaults["base_url"] = check_url(public_url)
    store.outbox_defaults = defaults
    metrics = Metrics(store)
    ctx = ServerContext(
        store=store,
        tokens=tokens,
        webhook_secret=secret or None,
        engine=None,
        metrics=metrics,
        runs_dir=runs_path,
        work_dir=Path(work_dir),
        webhook_template=webhook_template,
        webhook_repos=frozenset(r.strip().lower() for r in webhook_repos if r.strip()),
        sse_poll=sse_poll,
        sse_keepalive=sse_keepalive,
        sse_max=sse_max,
        reviewflow_cmd=reviewflow_cmd
        or ([sys.executable, "-m", "reviewflow"] if execute else ["reviewflow"]),
        parse_timeout=parse_timeout,
        github_post_back=have_credentials() if github_post_back is None else github_post_back,
        public_url=public_url.rstrip("/") if public_url else None,
        github_api_url=github_api_url,
    )
    metrics.collector.workers_alive = ctx.workers_alive
    if execute:
        ctx.engine = Engine(
            store,
            runs_dir=runs_path,
            observer=_observer(metrics, ctx),
            max_concurrency=concurrency,
            **(engine_options or {}),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if resume_orphans and ctx.engine is not None:
            ctx.resume_orphans()
        follower = None
        if ctx.engine is None and isinstance(store, PostgresStore):
            follower = asyncio.ensure_future(_follow_events(store, metrics))
        log.info("server.start", execute=execute)
        deliverer = Deliverer(store).start()
        stop_schedules = asyncio.Event()
        firing = None
        if schedules:
            from ..schedules import Scheduler, run_async

            def store_run(spec: Any, run_id: str, meta: dict[str, str]) -> tuple[str, bool]:
                return ctx.store_run(spec, run_id=run_id, meta=meta)

            many = None
            if ctx.engine is None and isinstance(store, PostgresStore):
                from ..cluster.queue import Cluster

                many = Cluster(store).submit_many  # a claim's runs in one statement, as workers
            firing = asyncio.ensure_future(
                run_async(Scheduler(store, store_run, submit_many=many), stop_schedules, ctx.spawn)
            )
        try:
            yield
        finally:
            stop_schedules.set()
            if firing is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(firing, 10)
            deliverer.stop()
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(BaseException):
                    await follower
            await ctx.shutdown()
            log.info("server.stop")

    app = FastAPI(
        title="reviewflow",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=Json,
    )
    app.state.rf = ctx
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=max_body)
    app.include_router(runs.router)
    app.include_router(control.router)
    app.include_router(schedules_api.router)
    app.include_router(webhooks.router)
    _probes(app, ctx)
    ui.install(app, list(ui_login_once))
    return app


def _probes(app: FastAPI, ctx: ServerContext) -> None:
    # One thread of their own: probes never queue behind requests busy on the shared threads.
    prober = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reviewflow-probe")

    @app.get("/health", tags=["probes"], summary="The process is alive", response_model=Health)
    async def health() -> dict[str, str]:
        return {"status": "ok"}  # on the loop: it answers as long as the loop does

    @app.get(
        "/ready",
        tags=["probes"],
        summary="Database reachable and schema current",
        response_model=None,
        responses={
            200: {"model": Readiness},
            503: {"model": Readiness, "description": "Not ready: `reason` says why."},
        },
    )
    async def ready() -> Json:
        loop = asyncio.get_running_loop()
        reason, version = await loop.run_in_executor(prober, readiness, ctx.store)
        status = 200 if reason is None else 503
        return Json(
            {
                "status": "ready" if reason is None else "unavailable",
                "reason": reason,
                "schema_version": version,
            },
            status_code=status,
        )

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": f"Prometheus text exposition ({CONTENT_TYPE_LATEST}).",
            }
        },
    )
    def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def readiness(store: Store) -> tuple[str | None, int | None]:
    """(None, schema version) when the store answers and its schema is current, else
    (reason, version if known)."""
    try:
        store.get_run(READY_PROBE)
    except Exception as exc:  # a probe answers whatever the driver raised
        return f"database unreachable: {exc}", None
    try:
        return _schema_check(store)
    except Exception as exc:
        return f"cannot read the schema version: {type(exc).__name__}: {exc}", None


def _schema_check(store: Store) -> tuple[str | None, int | None]:
    from ..store import SQLiteStore

    if isinstance(store, SQLiteStore):
        from ..store.sqlite import SCHEMA_VERSION

        conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute("SELECT version FROM schema_version").fetchall()
        finally:
            conn.close()
        version = max((int(r[0]) for r in rows), default=None)
        if version != SCHEMA_VERSION:
            return f"schema version {version}, this reviewflow needs {SCHEMA_VERSION}", version
        return None, version
    url = getattr(store, "url", None)
    if isinstance(url, str):
        try:
            from ..store import migrate
            from ..store.postgres import connect
        except ImportError:
            return None, None  # reachable is all we can tell
        if not hasattr(migrate, "current"):
            return None, None
        with connect(url) as pg:
            version = migrate.current(pg)
        latest = migrate.latest()
        if version < latest:
            return (
                f"schema version {version}, this reviewflow needs {latest}: run "
                "`reviewflow db upgrade`"
            ), version
        return None, version
    return None, None


def _observer(metrics: Metrics, ctx: ServerContext) -> Callable[..., None]:
    """The engine's observer: metrics, then the run's waiting event streams (the engine calls
    it on the server's event loop, once a transition is written)."""

    def observe(
        run_id: str,
        task: str | None,
        from_state: str | None,
        to_state: str,
        attempt: int | None,
        detail: str | None,
    ) -> None:
        metrics.observe(run_id, task, from_state, to_state, attempt, detail)
        if run_id in ctx.wakers:
            ctx.wake(run_id)

    return observe
