"""Run control (cancel, pause, resume) and approval decisions, as the CLI commands do them.

Whoever executes the run carries the command out: this server's engine directly when it is the
one, else a request left in the store for the owning process (picked up by its next heartbeat).
A run nobody executes is taken over to be cancelled (as `reviewflow cancel` does), or, on
resume, executed here (or left for a worker with `--no-execute`).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends

from ..engine import Engine, RunBusy, owner_alive
from ..errors import ApprovalDecided
from ..states import RUN_TERMINAL, TASK_TERMINAL, RunState, TaskState
from ..store import RunRecord
from .auth import Token, can_write
from .context import ServerContext, blocking, context, load_run
from .http import ApiError, Json
from .runs import RunId, TaskName
from .schemas import WRITE_ERRORS, ControlAccepted, Decision, DecisionDone, errors

router = APIRouter(tags=["control"])
Ctx = Annotated[ServerContext, Depends(context)]
Writer = Annotated[Token, Depends(can_write)]
DEFAULT_APPROVER = "api"
CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": ControlAccepted},
    **errors(*WRITE_ERRORS, 404, 409),
}


def _unfinished(ctx: ServerContext, run_id: str) -> RunRecord:
    record = load_run(ctx.store, run_id)
    if RunState(record.state) in RUN_TERMINAL:
        raise ApiError(409, f"run {run_id} already ended: {record.state}", "run_id")
    return record


def _here(ctx: ServerContext, run_id: str) -> bool:
    return ctx.engine is not None and ctx.engine.live_run(run_id) is not None


async def _state(ctx: ServerContext, run_id: str) -> str:
    live = ctx.engine.live_run(run_id) if ctx.engine is not None else None
    if live is not None:
        return live.state.value
    return (await blocking(load_run, ctx.store, run_id)).state


async def _accepted(ctx: ServerContext, run_id: str, action: str, how: str) -> Json:
    return Json(
        {"run_id": run_id, "action": action, "state": await _state(ctx, run_id), "how": how},
        status_code=202,
    )


async def _by_workers(ctx: ServerContext, record: RunRecord, action: str) -> Json | None:
    """A run executed by `reviewflow worker`s: the command is applied in the database now
    (running attempts stop at their workers' next heartbeat); None for other runs."""
    if not record.mode:
        return None
    from ..cluster.queue import Cluster
    from ..store.postgres import PostgresStore

    if not isinstance(ctx.store, PostgresStore):
        raise ApiError(409, f"run {record.run_id} is executed by workers", "run_id")
    cluster = Cluster(ctx.store)
    await blocking(cluster.control, record.run_id, action)
    return await _accepted(ctx, record.run_id, action, "workers")


def _elsewhere(ctx: ServerContext, record: RunRecord) -> bool:
    """Another process (or this server, about to start it) executes the run. A lease held by
    this server's own engine for a run it no longer executes (a store fault interrupted it
    before the lease could be given back) is nobody's."""
    if record.run_id in ctx.running:
        return True
    if ctx.engine is not None and record.owner == ctx.engine.owner:
        return False
    return owner_alive(record.owner, record.lease_until, time.time())


@router.post(
    "/runs/{run_id}/cancel",
    summary="Cancel a run",
    status_code=202,
    response_model=None,
    responses=CONTROL_RESPONSES,
)
async def cancel(run_id: RunId, ctx: Ctx, _: Writer) -> Json:
    record = await blocking(_unfinished, ctx, run_id)
    if (done := await _by_workers(ctx, record, "cancel")) is not None:
        return done
    if _here(ctx, run_id):
        assert ctx.engine is not None
        ctx.engine.cancel(run_id)
        return await _accepted(ctx, run_id, "cancel", "here")
    if not _elsewhere(ctx, record):
        # Nobody executes it: take it over just to cancel it, as `reviewflow cancel` does.
        engine = (
            ctx.engine
            if ctx.engine is not None and not ctx.stopping
            else Engine(ctx.store, runs_dir=ctx.runs_dir)
        )
        try:
            await engine.execute(run_id, cancel=True)
            return await _accepted(ctx, run_id, "cancel", "here")
        except RunBusy:
            pass  # someone claimed it meanwhile: ask them
    await blocking(ctx.store.request, run_id, "cancel")
    return await _accepted(ctx, run_id, "cancel", "requested")


@router.post(
    "/runs/{run_id}/pause",
    summary="Pause a run (running tasks finish)",
    status_code=202,
    response_model=None,
    responses=CONTROL_RESPONSES,
)
async def pause(run_id: RunId, ctx: Ctx, _: Writer) -> Json:
    record = await blocking(_unfinished, ctx, run_id)
    if (done := await _by_workers(ctx, record, "pause")) is not None:
        return done
    if _here(ctx, run_id):
        assert ctx.engine is not None
        ctx.engine.pause(run_id)
        return await _accepted(ctx, run_id, "pause", "here")
    if _elsewhere(ctx, record):
        await blocking(ctx.store.request, run_id, "pause")
        return await _accepted(ctx, run_id, "pause", "requested")
    raise ApiError(
        409,
        f"run {run_id} is not being executed by any process; nothing to "
        f"pause (continue it with POST /runs/{run_id}/resume)",
        "run_id",
    )


@router.post(
    "/runs/{run_id}/resume",
    summary="Resume a paused or interrupted run",
    status_code=202,
    response_model=None,
    responses=CONTROL_RESPONSES,
)
async def resume(run_id: RunId, ctx: Ctx, _: Writer) -> Json:
    record = await blocking(_unfinished, ctx, run_id)
    if (done := await _by_workers(ctx, record, "resume")) is not None:
        return done
    if _here(ctx, run_id):
        assert ctx.engine is not None
        ctx.engine.resume(run_id)
        return await _accepted(ctx, run_id, "resume", "here")
    if _elsewhere(ctx, record):
        await blocking(ctx.store.request, run_id, "resume")
        return await _accepted(ctx, run_id, "resume", "requested")
    if ctx.spawn(run_id):
        return await _accepted(ctx, run_id, "resume", "here")
    return await _accepted(ctx, run_id, "resume", "queued")


def _decide(
    ctx: ServerContext,
    run_id: str,
    task: str,
    decision: Literal["approved", "rejected"],
    body: Decision,
) -> tuple[Json, bool]:
    """The checks and the store call of `reviewflow approve|reject` (cli.review._decide), on
    a worker thread; also whether nobody executes the run (this server may carry it on)."""
    store = ctx.store
    record = load_run(store, run_id)
    tasks = {t.name: t for t in store.get_tasks(run_id)}
    spec: dict[str, Any] = json.loads(record.spec)
    task_body = spec.get("tasks", {}).get(task) or spec.get("on_failure", {}).get(task)
    if task not in tasks or task_body is None:
        names = [n for n, b in spec.get("tasks", {}).items() if b.get("type") == "approval"]
        hint = f" (approval tasks: {', '.join(names)})" if names else " (it has no approval task)"
        raise ApiError(404, f"run {run_id} has no task {task!r}{hint}", "task")
    if task_body.get("type") != "approval":
        raise ApiError(
            409, f"task {task!r} is not an approval task (type {task_body.get('type')})", "task"
        )
    if RunState(record.state) in RUN_TERMINAL:
        raise ApiError(409, f"run {run_id} already ended: {record.state}", "run_id")
    state = TaskState(tasks[task].state)
    if state in TASK_TERMINAL:
        raise ApiError(409, f"task {task} already ended: {state.value}", "task")
    if state is TaskState.BLOCKED:
        raise ApiError(
            409,
            f"task {task} is not waiting for approval yet (its dependencies are not done)",
            "task",
        )
    who = body.by or DEFAULT_APPROVER
    allowed = (task_body.get("params") or {}).get("approvers") or []
    if allowed and who not in allowed:
        raise ApiError(
            403, f"{who} may not decide on {task} (approvers: {', '.join(allowed)})", "by"
        )
    now = time.time()
    detail = f"{decision} by {who}" + (f": {body.comment}" if body.comment else "")
    event = (run_id, task, state.value, state.value, tasks[task].attempts, now, detail)
    try:
        store.decide_approval(run_id, task, decision, who, body.comment, now, event)
    except ApprovalDecided as exc:
        raise ApiError(409, str(exc), "task") from None
    orphan = not record.mode and not owner_alive(record.owner, record.lease_until, now)
    answer = {"run_id": run_id, "task": task, "decision": decision, "by": who, "detail": detail}
    return Json(answer), orphan


async def _decided(
    ctx: ServerContext,
    run_id: str,
    task: str,
    decision: Literal["approved", "rejected"],
    body: Decision,
) -> Json:
    answer, orphan = await blocking(_decide, ctx, run_id, task, decision, body)
    if orphan:
        ctx.spawn(run_id)  # nothing executes it: carry on here (when this server executes)
    return answer


DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": DecisionDone},
    **errors(*WRITE_ERRORS, 400, 404, 409),
}


@router.post(
    "/runs/{run_id}/tasks/{task}/approve",
    summary="Approve a waiting approval task",
    response_model=None,
    responses=DECISION_RESPONSES,
)
async def approve(
    run_id: RunId,
    task: TaskName,
    ctx: Ctx,
    _: Writer,
    body: Annotated[Decision | None, Body()] = None,
) -> Json:
    return await _decided(ctx, run_id, task, "approved", body or Decision())


@router.post(
    "/runs/{run_id}/tasks/{task}/reject",
    summary="Reject a waiting approval task",
    response_model=None,
    responses=DECISION_RESPONSES,
)
async def reject(
    run_id: RunId, task: TaskName, ctx: Ctx, _: Writer, body: Annotated[Decision, Body()]
) -> Json:
    if not (body.comment or "").strip():
        raise ApiError(422, "a rejection needs a comment saying why", "comment")
    return await _decided(ctx, run_id, task, "rejected", body)
