"""Schedules over HTTP: what `reviewflow schedule add|list|pause|resume|remove` does, with the
same validation (reviewflow.schedules), so an operator without shell access to a machine that
reaches the database can manage them. Reading needs any token, changing a write token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from ..errors import SpecError
from ..schedules import (
    ScheduleError,
    ScheduleFieldError,
    describe,
    from_fields,
    register,
    set_paused,
)
from ..spec import WorkflowSpec
from .auth import Token, can_read, can_write
from .context import ServerContext, blocking, context
from .http import ApiError
from .schemas import READ_ERRORS, WRITE_ERRORS, Schedule, ScheduleList, errors
from .submit import (
    YAML_TYPES,
    from_mapping,
    from_yaml,
    parse_json,
    parse_meta,
    plain_json,
    workflow_media,
)

router = APIRouter(tags=["schedules"])
Ctx = Annotated[ServerContext, Depends(context)]
Reader = Annotated[Token, Depends(can_read)]
Writer = Annotated[Token, Depends(can_write)]
ScheduleId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=200)]
Flag = Annotated[str | None, Query(max_length=1000)]

SCHEDULE_BODY = {
    "required": True,
    "description": "A workflow (YAML text, or its JSON mapping) with `schedules:`, or without "
    "them and one schedule given by the query (`cron` or `interval`, …), as `reviewflow "
    "schedule add FILE [--cron …]`.",
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    },
}


def _missing(schedule_id: str) -> ApiError:
    return ApiError(404, f"no schedule {schedule_id!r}", "schedule_id")


@router.get(
    "/schedules",
    summary="List the schedules",
    response_model=ScheduleList,
    responses=errors(*READ_ERRORS),
)
async def list_schedules(ctx: Ctx, _: Reader) -> dict[str, Any]:
    rows = await blocking(ctx.store.list_schedules)
    return {"schedules": [describe(r) for r in rows]}


@router.get(
    "/schedules/{schedule_id}",
    summary="One schedule",
    response_model=Schedule,
    responses=errors(*READ_ERRORS, 404),
)
async def get_schedule(schedule_id: ScheduleId, ctx: Ctx, _: Reader) -> dict[str, Any]:
    row = await blocking(ctx.store.get_schedule, schedule_id)
    if row is None:
        raise _missing(schedule_id)
    return describe(row)


@router.post(
    "/schedules",
    status_code=201,
    summary="Add (or replace) the schedules of a workflow",
    response_model=ScheduleList,
    responses=errors(*WRITE_ERRORS, 415),
    openapi_extra={"requestBody": SCHEDULE_BODY},
)
async def add_schedules(
    request: Request,
    ctx: Ctx,
    _: Writer,
    name: Flag = None,
    cron: Flag = None,
    interval: Flag = None,
    timezone: Annotated[str, Query(max_length=100)] = "UTC",
    catchup: Annotated[str, Query(max_length=10)] = "one",
    jitter: Flag = None,
    meta: Annotated[
        list[str], Query(description="Run metadata `key=value` (repeatable).", max_length=50)
    ] = [],  # noqa: B006
) -> dict[str, Any]:
    kind = workflow_media(request.headers.get("content-type"))
    body = await request.body()
    spec = await ctx.reading(_workflow, kind, body)
    if cron is not None or interval is not None:
        try:
            entry = from_fields(
                name=name,
                cron=cron,
                interval=interval,
                timezone=timezone,
                catchup=catchup,
                jitter=jitter,
                meta=parse_meta(meta) if meta else None,
            )
        except ScheduleFieldError as exc:
            raise ApiError(422, exc.message, exc.field or "cron") from None
        spec = spec.model_copy(update={"schedules": [entry]})
    else:
        given = {"name": name, "jitter": jitter, "meta": meta or None}
        extra = [k for k, v in given.items() if v is not None]
        if timezone != "UTC":
            extra.append("timezone")
        if catchup != "one":
            extra.append("catchup")
        if extra:
            raise ApiError(422, f"{extra[0]} goes with cron or interval", extra[0])
    if not spec.schedules:
        raise ApiError(
            422, "no schedules: add `schedules:` to the workflow or give cron/interval", "schedules"
        )
    try:
        rows = await blocking(register, ctx.store, spec)
    except (ScheduleError, SpecError) as exc:
        text = str(exc)
        field = text.split(":", 1)[0] if ":" in text else "schedules"
        raise ApiError(422, text, field if " " not in field else "schedules") from None
    return {"schedules": [describe(r) for r in rows]}


def _workflow(kind: str, body: bytes) -> WorkflowSpec:
    """The workflow of the body (on a reader thread: a big one takes CPU to validate)."""
    if kind in YAML_TYPES:
        return from_yaml(body)
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ApiError(422, f"the body must be a JSON object, got {type(data).__name__}", "body")
    return from_mapping(data, plain=plain_json(body))


async def _pause(ctx: ServerContext, schedule_id: str, paused: bool) -> dict[str, Any]:
    if not await blocking(set_paused, ctx.store, schedule_id, paused):
        raise _missing(schedule_id)
    row = await blocking(ctx.store.get_schedule, schedule_id)
    if row is None:  # removed meanwhile
        raise _missing(schedule_id)
    return describe(row)


@router.post(
    "/schedules/{schedule_id}/pause",
    summary="Stop firing a schedule (runs already started go on)",
    response_model=Schedule,
    responses=errors(*WRITE_ERRORS, 404),
)
async def pause_schedule(schedule_id: ScheduleId, ctx: Ctx, _: Writer) -> dict[str, Any]:
    return await _pause(ctx, schedule_id, True)


@router.post(
    "/schedules/{schedule_id}/resume",
    summary="Fire a schedule again from its next slot (slots missed meanwhile stay missed)",
    response_model=Schedule,
    responses=errors(*WRITE_ERRORS, 404),
)
async def resume_schedule(schedule_id: ScheduleId, ctx: Ctx, _: Writer) -> dict[str, Any]:
    return await _pause(ctx, schedule_id, False)


@router.delete(
    "/schedules/{schedule_id}",
    status_code=204,
    summary="Delete a schedule (its runs stay)",
    response_class=Response,
    responses=errors(*WRITE_ERRORS, 404, explicit=True),
)
async def delete_schedule(schedule_id: ScheduleId, ctx: Ctx, _: Writer) -> Response:
    if not await blocking(ctx.store.remove_schedule, schedule_id):
        raise _missing(schedule_id)
    return Response(status_code=204)
