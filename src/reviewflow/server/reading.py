"""Big POST /runs bodies are read and stored by a child process, under a time bound.

Parsing and validating a workflow of thousands of tasks takes seconds of CPU, much of it in C
code (the JSON and YAML parsers, pydantic's core) that holds the interpreter lock: on a thread,
it still stalls the event loop, /health included, for hundreds of milliseconds at a time. A
child process has its own interpreter: it reads the body, validates it, stores the run with
its own connection to the same database and answers with the run's id — the server never holds
the spec in its own interpreter (an executing server loads it when the run starts, as for any
stored run). Past `parse_timeout` seconds of reading the child is killed and the request gets a
422, so a hostile body costs one child for a bounded time. Children are forked from a
forkserver that has the workflow modules loaded already: starting one takes milliseconds.

Small bodies (and an in-memory store, which a child cannot reach) are read on a thread:
`ServerContext.reading`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..store import Store
from .http import ApiError

BIG_BODY = 64 * 1024
"""Bodies of more bytes than this are read by a child process."""
STORE_WAIT = 60.0
"""Seconds a child may take to store the run once it has read the workflow."""

_forkserver = multiprocessing.get_context("forkserver")
_forkserver.set_forkserver_preload(
    ["reviewflow.server.reading", "reviewflow.server.submit", "reviewflow.engine"]
)


@dataclass(frozen=True)
class Stored:
    """What POST /runs answers about the run a child stored."""

    run_id: str
    workflow: str
    state: str
    created: bool


@dataclass(frozen=True)
class Template:
    """The body was a review template request: the server builds that run itself."""

    data: dict[str, Any]


def store_address(store: Store) -> str | None:
    """Where a child process finds the same database: a SQLite path, a PostgreSQL URL; None
    for a store only this process can see."""
    from ..store import SQLiteStore

    if isinstance(store, SQLiteStore):
        return str(Path(store.path).resolve())
    url = getattr(store, "url", None)
    return url if isinstance(url, str) else None


def _error(exc: ApiError) -> tuple[Any, ...]:
    return ("error", exc.status_code, str(exc.detail), exc.field, exc.headers)


def _child(
    conn: Connection,
    cwd: str,
    kind: str,
    body: bytes,
    address: str,
    for_workers: bool,
    run_id: str | None,
    meta: dict[str, str],
    outbox_defaults: dict[str, Any] | None = None,
) -> None:
    """In the child: read the workflow, say so, store the run, answer with it."""
    from ..engine import Engine
    from ..store import open_store
    from .submit import JSON_TYPES, from_mapping, from_yaml, parse_json, plain_json

    os.chdir(cwd)  # plugin folders are relative to the server's directory
    try:
        if kind in JSON_TYPES:
            data = parse_json(body)
            if not isinstance(data, dict):
                name = type(data).__name__
                raise ApiError(422, f"the body must be a JSON object, got {name}", "body")
            if "template" in data:
                conn.send(("template", data))
                return
            spec = from_mapping(data, plain=plain_json(body))
        else:
            spec = from_yaml(body)
    except ApiError as exc:
        conn.send(_error(exc))
        return
    conn.send(("read",))
    store = open_store(address)
    store.outbox_defaults = dict(outbox_defaults or {})  # the server's notification targets
    try:
        try:
            if for_workers:
                from ..cluster.queue import Cluster
                from ..store.postgres import PostgresStore

                assert isinstance(store, PostgresStore)  # workers read a PostgreSQL database only
                cluster = Cluster(store)
                rid, created = cluster.submit(spec, run_id=run_id, meta=meta)
            else:
                rid, created = Engine(store).submit(spec, run_id=run_id, meta=meta)
        except SpecError as exc:  # the run id
            conn.send(_error(ApiError(422, exc.message, "Idempotency-Key")))
            return
        record = store.get_run(rid)
        assert record is not None
        if not created and (not spec.stored_as(record.spec) or record.meta != meta):
            message = f"Idempotency-Key {rid!r} was used for a different request"
            conn.send(_error(ApiError(422, message, "Idempotency-Key")))
            return
        conn.send(("stored", Stored(rid, record.workflow, record.state, created)))
    finally:
        store.close()


def _receive(conn: Connection, timeout: float | None) -> Any:
    """The child's next message; TimeoutError past `timeout`, EOFError if it died."""
    if not conn.poll(timeout):
        raise TimeoutError
    return conn.recv()


async def read_and_store(
    *,
    kind: str,
    body: bytes,
    address: str,
    for_workers: bool,
    run_id: str | None,
    meta: dict[str, str],
    deadline: float,
    limit: float,
    outbox_defaults: dict[str, Any] | None = None,
) -> Stored | Template:
    """Read `body` in a child and store its run there (see the module docstring). Raises
    ApiError for a bad body, one not read by `deadline` (loop time; `limit` s are allowed in
    all), or a child that died."""
    loop = asyncio.get_running_loop()
    receiving, sending = _forkserver.Pipe(duplex=False)
    child = _forkserver.Process(
        target=_child,
        args=(
            sending,
            os.getcwd(),
            kind,
            body,
            address,
            for_workers,
            run_id,
            meta,
            outbox_defaults,
        ),
        name="reviewflow-read",
        daemon=True,
    )
    try:
        await loop.run_in_executor(None, child.start)
        sending.close()  # the child holds the only writer: its death is an EOF here
        message = None
        while message is None or message == ("read",):
            wait = STORE_WAIT if message == ("read",) else max(deadline - loop.time(), 0.0)
            try:
                message = await loop.run_in_executor(None, _receive, receiving, wait)
            except TimeoutError:
                if message == ("read",):
                    raise ApiError(503, "storing the run took too long: retry") from None
                raise ApiError(
                    422,
                    f"reading the workflow took longer than {limit:g} s: send a smaller "
                    "one (or JSON, which reads faster than YAML)",
                    "body",
                ) from None
            except EOFError:
                raise ApiError(
                    422, f"reading the workflow stopped its reader (exit {child.exitcode})", "body"
                ) from None
    finally:
        sending.close()  # idempotent; still open if the child never started
        if child.is_alive():
            child.kill()
        if child.pid is not None:
            await loop.run_in_executor(None, child.join)
        receiving.close()
    if message[0] == "error":
        _, status, detail, field, headers = message
        raise ApiError(status, detail, field, headers)
    if message[0] == "template":
        return Template(message[1])
    stored: Stored = message[1]  # the child sent ("stored", Stored(...)): see _child
    return stored
