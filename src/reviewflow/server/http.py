"""HTTP plumbing: JSON errors of one shape, the exception handlers, the body size limit.

Every error the API sends is `{"error": "...", "field": "..." | null}` with a 4xx status (503
when the database is unreachable); nothing the client sends may produce a 500.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import RunNotFound, SpecError, StoreError
from ..logs import log

DEFAULT_MAX_BODY = 1024 * 1024


def _finite(value: Any) -> Any:
    """NaN and infinities (a python task may return them) are not JSON: null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class Json(JSONResponse):
    """JSONResponse that never fails on what a task returned."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(
                content, ensure_ascii=False, allow_nan=False, default=str, separators=(",", ":")
            ).encode("utf-8")
        except ValueError:  # NaN/infinity, or a lone surrogate UTF-8 cannot encode
            return json.dumps(
                _finite(content),
                ensure_ascii=True,
                allow_nan=False,
                default=str,
                separators=(",", ":"),
            ).encode("ascii")


def error_response(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> Json:
    return Json({"error": message, "field": field}, status_code=status, headers=headers)


class ApiError(HTTPException):
    """An HTTP error naming the request field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers=headers)
        self.field = field


def spec_error(exc: SpecError, data: Any = None) -> ApiError:
    """422 for an invalid workflow, naming the field as a dotted path in the workflow."""
    field: str | None
    if exc.task:
        section = "tasks"
        if isinstance(data, dict) and exc.task in (data.get("on_failure") or {}):
            section = "on_failure"
        field = ".".join(p for p in (section, exc.task, exc.field) if p)
    else:
        field = exc.field or "body"
    return ApiError(422, str(exc), field)


def _field(loc: tuple[Any, ...]) -> str:
    where, *rest = loc or ("body",)
    if not rest:
        return str(where)
    return ".".join(str(p) for p in rest)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first: Mapping[str, Any] = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = tuple(first.get("loc") or ("body",))
    field = _field(loc)
    where = {
        "path": "path parameter",
        "query": "query parameter",
        "header": "header",
        "body": "body field",
        "cookie": "cookie",
    }.get(str(loc[0]), "field")
    message = str(first.get("msg", "invalid"))
    if str(loc[0]) == "body" and len(loc) <= 2 and first.get("type") == "json_invalid":
        field, message = "body", f"invalid JSON: {(first.get('ctx') or {}).get('error', '')}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(422, f"{where} {field}: {message}{more}", field)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    field = getattr(exc, "field", None)
    detail = str(exc.detail)
    if exc.status_code == 413 and field is None:
        field = "body"
    elif exc.status_code == 400 and field is None:  # FastAPI could not read a JSON body
        field, detail = "body", f"{detail} (JSON in UTF-8 expected)"
    return error_response(exc.status_code, detail, field, exc.headers)


async def _store_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RunNotFound):  # the run went away between two reads
        return error_response(404, str(exc), "run_id")
    log.warning("server.store_error", path=request.url.path, error=str(exc))
    return error_response(503, f"database unavailable: {exc}")


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client went away while sending its body: nobody reads an answer, nothing failed."""
    log.info("server.client_disconnected", method=request.method, path=request.url.path)
    return error_response(400, "the client disconnected before the body was read", "body")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)


_QUERY_NAMES = "_reviewflow_query_names"
"""Attribute caching a route's query parameters on the route (routes are unhashable)."""


def _repeatable(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_repeatable(a) for a in get_args(annotation)) if origin is not None else False


def _query_params(dependant: Any) -> dict[str, bool]:
    """Query parameter names of a route (its dependencies too) -> whether it repeats."""
    params = {p.alias: _repeatable(p.field_info.annotation) for p in dependant.query_params}
    for sub in dependant.dependencies:
        params.update(_query_params(sub))
    return params


def strict_query(request: Request) -> None:
    """422 for a query parameter the route does not take, or a single-valued one given twice:
    a typo (`?stat=failed`) is never silently ignored, as unknown keys of a workflow are not."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    params = getattr(route, _QUERY_NAMES, None)
    if params is None:
        params = _query_params(dependant)
        setattr(route, _QUERY_NAMES, params)
    for key in request.query_params:
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ApiError(422, f"unknown query parameter {key!r} (known: {known})", key)
        if not params[key] and len(request.query_params.getlist(key)) > 1:
            raise ApiError(422, f"query parameter {key!r} given more than once", key)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", "body")


class BodyLimit:
    """Refuse bodies over `limit` bytes: at once from Content-Length, else while reading (a
    chunked body is counted as it arrives and refused as soon as it passes the limit)."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = [v for k, v in scope["headers"] if k == b"content-length"]
        if lengths:
            try:
                declared = int(lengths[0])
            except ValueError:
                await error_response(400, "bad Content-Length header", "Content-Length")(
                    scope, receive, send
                )
                return
            if declared > self.limit:
                await error_response(
                    413, str(BodyTooLarge(self.limit).detail), "body", {"Connection": "close"}
                )(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside a route (its handler did not see it)
            if started:
                raise
            await error_response(413, str(exc.detail), "body", {"Connection": "close"})(
                scope, receive, send
            )
