"""Run routes: submit, list, status, events (and their live stream), task logs, graph."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..diagram import mermaid
from ..engine import new_run_id
from ..errors import ReviewflowError, RunNotFound, SpecError
from ..spec import WorkflowSpec
from ..states import RUN_TERMINAL, RunState
from ..status import run_status
from ..store import EventRecord, RunFilter, RunRecord, Store
from .auth import Token, can_read, can_write
from .context import RunIdParam, ServerContext, blocking, context, load_run
from .http import ApiError, Json
from .reading import Stored, Template
from .schemas import (
    READ_ERRORS,
    RUN_ID_PATTERN,
    TASK_PATTERN,
    WRITE_ERRORS,
    Event,
    RunCreated,
    RunPage,
    RunStatus,
    errors,
)
from .submit import (
    YAML_TYPES,
    from_mapping,
    from_template,
    from_yaml,
    parse_json,
    parse_meta,
    plain_json,
    workflow_media,
)
from .ui_timeline import task_row

router = APIRouter(tags=["runs"])
LOG_MAX_BYTES = 8 * 1024 * 1024

Ctx = Annotated[ServerContext, Depends(context)]
RunId = Annotated[str, RunIdParam]
TaskName = Annotated[str, PathParam(pattern=TASK_PATTERN, max_length=200)]
Reader = Annotated[Token, Depends(can_read)]
Writer = Annotated[Token, Depends(can_write)]
MetaQuery = Annotated[
    list[str], Query(description="Run metadata `key=value` (repeatable).", max_length=50)
]

WORKFLOW_BODY = {
    "required": True,
    "description": "A workflow (YAML text, or its JSON mapping), or a review template run "
    '`{"template": "pr", "params": {repo_url, sha, base, ...}}` (see docs/api.md).',
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
    },
}


def event_doc(ev: EventRecord) -> dict[str, Any]:
    """An event as `reviewflow events --json` prints it."""
    return {
        "id": ev.id,
        "run_id": ev.run_id,
        "task": ev.task,
        "from": ev.from_state,
        "to": ev.to_state,
        "attempt": ev.attempt,
        "at": ev.at,
        "detail": ev.detail,
    }


def run_summary(r: RunRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "workflow": r.workflow,
        "state": r.state,
        "meta": r.meta,
        "created_at": r.created_at,
        "finished_at": r.finished_at,
        "error": r.error,
    }


@router.post(
    "/runs",
    status_code=201,
    summary="Submit a run",
    responses={
        201: {
            "model": RunCreated,
            "description": "Created (and started, unless the server "
            "runs with --no-execute: then a worker executes it).",
        },
        200: {"model": RunCreated, "description": "A run with this Idempotency-Key exists."},
        **errors(*WRITE_ERRORS, 415),
    },
    openapi_extra={"requestBody": WORKFLOW_BODY},
)
async def submit_run(
    request: Request,
    ctx: Ctx,
    _: Writer,
    meta: MetaQuery = [],  # noqa: B006
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=RUN_ID_PATTERN,
            max_length=200,
            description="The run id: a second request with the same key answers 200 with the "
            "existing run instead of starting another.",
        ),
    ] = None,
) -> Response:
    metadata = parse_meta(meta)
    kind = workflow_media(request.headers.get("content-type"))
    body = await request.body()
    stored = await ctx.read_and_store(kind, body, idempotency_key, metadata)
    if isinstance(stored, Stored):
        if stored.created:
            ctx.spawn_stored(stored.run_id)
        rid = stored.run_id
        doc = {"run_id": rid, "workflow": stored.workflow, "state": stored.state}
        return Json(
            {**doc, "created": stored.created},
            status_code=201 if stored.created else 200,
            headers={"Location": f"/runs/{rid}"},
        )
    if isinstance(stored, Template):  # a big template request: built here from its data
        body, kind = json.dumps(stored.data).encode(), "application/json"
    spec, run_id, metadata = await ctx.reading(
        _workflow, ctx, kind, body, idempotency_key, metadata
    )
    try:
        rid, created = await ctx.submit(spec, run_id=run_id, meta=metadata)
    except SpecError as exc:  # the run id
        raise ApiError(422, exc.message, "Idempotency-Key") from None
    return await blocking(_created, ctx, spec, rid, created, metadata)


def _workflow(
    ctx: ServerContext, kind: str, body: bytes, run_id: str | None, meta: dict[str, str]
) -> tuple[WorkflowSpec, str | None, dict[str, str]]:
    """The workflow a POST /runs body asks for, its run id and metadata (on a reader thread:
    parsing and validating a big workflow takes seconds of CPU)."""
    if kind in YAML_TYPES:
        return from_yaml(body), run_id, meta
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ApiError(422, f"the body must be a JSON object, got {type(data).__name__}", "body")
    if "template" in data:
        run_id = run_id or new_run_id(f"review-{data.get('template')}"[:100])
        spec, extra = from_template(ctx, data, run_id)
        return spec, run_id, {**meta, **extra}
    return from_mapping(data, plain=plain_json(body)), run_id, meta


def _created(
    ctx: ServerContext, spec: WorkflowSpec, rid: str, created: bool, meta: dict[str, str]
) -> Response:
    record = load_run(ctx.store, rid)
    if not created and (not spec.stored_as(record.spec) or record.meta != meta):
        raise ApiError(
            422, f"Idempotency-Key {rid!r} was used for a different request", "Idempotency-Key"
        )
    doc = {"run_id": rid, "workflow": record.workflow, "state": record.state, "created": created}
    return Json(doc, status_code=201 if created else 200, headers={"Location": f"/runs/{rid}"})


def _cursor(record: RunRecord) -> str:
    raw = json.dumps([record.created_at, record.run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        if not isinstance(run_id, str):
            raise TypeError(run_id)
        return float(created), run_id
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise ApiError(422, "bad cursor: pass back a next_cursor value", "cursor") from None


@router.get(
    "/runs",
    summary="List runs (newest first)",
    response_model=None,
    responses={200: {"model": RunPage}, **errors(*READ_ERRORS)},
)
def list_runs(
    ctx: Ctx,
    _: Reader,
    state: Annotated[RunState | None, Query(description="Only runs in this state.")] = None,
    workflow: Annotated[str | None, Query(max_length=200, description="Workflow name.")] = None,
    meta: MetaQuery = [],  # noqa: B006
    q: Annotated[
        str | None,
        Query(max_length=200, description="Text in the run id or workflow name (any case)."),
    ] = None,
    since: Annotated[
        float | None, Query(ge=0, le=1e11, description="Created at or after (Unix time).")
    ] = None,
    until: Annotated[
        float | None, Query(ge=0, le=1e11, description="Created before (Unix time).")
    ] = None,
    counts: Annotated[
        bool, Query(description="Also count the runs by state (filters but `state` apply).")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor of the previous page.")
    ] = None,
) -> Json:
    where = RunFilter(
        state=state.value if state is not None else None,
        workflow=workflow,
        search=q or None,
        meta=tuple(sorted(parse_meta(meta).items())),
        created_after=since,
        created_before=until,
        before=_decode_cursor(cursor) if cursor else None,
    )
    found = ctx.store.find_runs(where, limit + 1)
    page = found[:limit]
    doc: dict[str, Any] = {
        "runs": [run_summary(r) for r in page],
        "next_cursor": _cursor(page[-1]) if len(found) > limit else None,
    }
    if counts:
        doc["counts"] = ctx.store.count_runs(where)
    return Json(doc)


@router.get(
    "/runs/{run_id}",
    summary="A run's status (as `status RUN_ID --json`)",
    response_model=None,
    responses={200: {"model": RunStatus}, **errors(*READ_ERRORS, 404)},
)
def get_run(run_id: RunId, ctx: Ctx, _: Reader) -> Json:
    try:
        return Json(run_status(ctx.store, run_id))
    except RunNotFound:
        raise ApiError(404, f"no run with id {run_id!r}", "run_id") from None


@router.get(
    "/runs/{run_id}/events",
    summary="The run's transitions, oldest first",
    response_model=None,
    responses={200: {"model": list[Event]}, **errors(*READ_ERRORS, 404)},
)
def get_events(
    run_id: RunId,
    ctx: Ctx,
    _: Reader,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events with a larger id.")] = 0,
) -> Json:
    load_run(ctx.store, run_id)
    return Json([event_doc(ev) for ev in ctx.store.get_events(run_id, after)])


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get(
    "/runs/{run_id}/events/stream",
    summary="Live transitions (server-sent events)",
    response_class=EventStream,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "`event: transition` per event (`id:` is the event id), "
            "`: keep-alive` comments, then `event: end` once the run has ended.",
        },
        **errors(*READ_ERRORS, 404, explicit=True),
    },
)
async def stream_events(
    run_id: RunId,
    ctx: Ctx,
    _: Reader,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=2**62, description="Resume after this event id."),
    ] = None,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="Start after this event id (Last-Event-ID wins).")
    ] = 0,
) -> EventStream:
    await run_in_threadpool(load_run, ctx.store, run_id)
    start = last_event_id if last_event_id is not None else after
    return EventStream(
        _follow(ctx, run_id, start),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _run_state(store: Store, run_id: str) -> str | None:
    """The run's state, without its spec (get_run reads it: 4.4 MB for 10k tasks, and a
    stream asks every `sse_poll` seconds)."""
    select = getattr(store, "select", None)
    if select is None:
        record = store.get_run(run_id)
        return record.state if record is not None else None
    rows = select("SELECT state FROM runs WHERE run_id = :run_id", {"run_id": run_id})
    return str(rows[0][0]) if rows else None


def _state_and_events(store: Store, run_id: str, last: int) -> tuple[str | None, list[Any]]:
    """The run's state, then its events after `last` (if the run had ended, its last events
    are in), in one trip to a worker thread."""
    return _run_state(store, run_id), store.get_events(run_id, last)


async def _follow(ctx: ServerContext, run_id: str, last: int) -> AsyncIterator[str]:
    waker = asyncio.Event()  # set by this server's engine once it wrote the run's transitions
    ctx.wakers.setdefault(run_id, set()).add(waker)
    try:
        async for chunk in _follow_run(ctx, run_id, last, waker):
            yield chunk
    finally:
        waiting = ctx.wakers.get(run_id)
        if waiting is not None:
            waiting.discard(waker)
            if not waiting:
                ctx.wakers.pop(run_id, None)


async def _follow_run(
    ctx: ServerContext, run_id: str, last: int, waker: asyncio.Event
) -> AsyncIterator[str]:
    store = ctx.store
    quiet_since = opened = time.monotonic()
    yield ": stream of run events\n\n"
    while True:
        waker.clear()
        try:
            # The run first, then its events: if the run had ended, its last events are in.
            state, events = await run_in_threadpool(_state_and_events, store, run_id, last)
        except ReviewflowError as exc:
            yield _sse("error", {"error": f"database unavailable: {exc}"})
            return
        if events:
            # one write to the socket for all of them, not one per event (a busy run makes
            # hundreds a second)
            last = events[-1].id
            yield "".join(_sse("transition", event_doc(ev), ev.id) for ev in events)
        now = time.monotonic()
        if events:
            quiet_since = now
        if state is None or state in RUN_TERMINAL:
            yield _sse("end", {"run_id": run_id, "state": state})
            return
        if ctx.sse_max is not None and now - opened >= ctx.sse_max:
            return  # a client reconnects with Last-Event-ID and carries on
        if now - quiet_since >= ctx.sse_keepalive:
            quiet_since = now
            yield ": keep-alive\n\n"
        # woken by this server's engine, else polled (runs executed by another process)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waker.wait(), ctx.sse_poll)


@router.get(
    "/runs/{run_id}/tasks/{task}/log",
    summary="An attempt's log (shell tasks)",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The log; the last 8 MiB of a longer one (header "
            "X-Log-Truncated: the full size).",
        },
        **errors(*READ_ERRORS, 404, explicit=True),
    },
)
def task_log(
    run_id: RunId,
    task: TaskName,
    ctx: Ctx,
    _: Reader,
    attempt: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="1-based; default the latest attempt.")
    ] = None,
    tail: Annotated[
        int | None,
        Query(ge=1, le=LOG_MAX_BYTES, description="Only the last TAIL bytes (a live view)."),
    ] = None,
) -> Response:
    # the run's state and the one task's row, not the run's spec and every task: the run page
    # asks every second for the log of the task it shows
    if _run_state(ctx.store, run_id) is None:
        raise ApiError(404, f"no run with id {run_id!r}", "run_id")
    row = task_row(ctx.store, run_id, task)
    if row is None:
        raise ApiError(404, f"run {run_id} has no task {task!r}", "task")
    number = attempt or row.attempts
    if number < 1:
        raise ApiError(404, f"task {task} has not started yet", "attempt")
    path = ctx.runs_dir / run_id / f"{task}.{number}.log"
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            wanted = tail or LOG_MAX_BYTES
            fh.seek(max(0, size - wanted))
            data = fh.read(wanted)
    except OSError:
        raise ApiError(
            404,
            f"no log of {task} attempt {number} on this server (python "
            "tasks write none; with --no-execute logs stay on the workers)",
            "attempt",
        ) from None
    headers = {"X-Log-Truncated": str(size)} if size > (tail or LOG_MAX_BYTES) else None
    return Response(data, media_type="text/plain; charset=utf-8", headers=headers)


@router.get(
    "/runs/{run_id}/graph",
    summary="The run's DAG as a Mermaid flowchart",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "`flowchart TD`, nodes coloured by task state.",
        },
        **errors(*READ_ERRORS, 404, 409, explicit=True),
    },
)
def graph(run_id: RunId, ctx: Ctx, _: Reader) -> Response:
    record = load_run(ctx.store, run_id)
    try:
        spec = WorkflowSpec.model_validate_json(record.spec)
    except (ValueError, SpecError) as exc:
        raise ApiError(409, f"the run's workflow cannot be loaded here: {exc}", "run_id") from None
    states = {t.name: t.state for t in ctx.store.get_tasks(run_id)}
    return Response(mermaid(spec, states), media_type="text/plain; charset=utf-8")
