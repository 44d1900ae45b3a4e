"""What the routes share: the store, the engine (when this server executes runs), settings.

The event loop serves every request, /health included, so nothing slow runs on it: the store's
calls run on worker threads (`blocking`), and reading a workflow — parsing, validating, loading
its plugins — is time-bounded and done by a child process for a big body (`read_and_store`,
reading.py: C parsers hold the interpreter lock, so a thread would still stall the loop), on a
small pool of reader threads for a small one (`reading`). A huge or hostile body costs at most
one reader for a bounded time, never the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread
from fastapi import Path as PathParam
from fastapi import Request

from ..engine import Engine, RunBusy, owner_alive
from ..errors import ReviewflowError
from ..logs import log
from ..spec import WorkflowSpec
from ..states import RunState
from ..store import RunRecord, Store
from ..store.postgres import PostgresStore
from .auth import TokenSet
from .http import ApiError
from .metrics import Metrics
from .reading import BIG_BODY, Stored, Template, read_and_store, store_address
from .review_run import PostBack
from .schemas import RUN_ID_PATTERN

SHUTDOWN_WAIT = 15.0
"""Seconds shutdown waits for interrupted attempts to stop (the default kill_grace is 5 s)."""
ORPHAN_MIN_AGE = 30.0
"""A pending run younger than this may be about to be executed by the process that created
it (`reviewflow run` submits, then claims): startup leaves it alone."""
READERS = 2
"""Workflows read at once (CPU-bound: more threads would only share the same cores)."""
PARSE_TIMEOUT = 30.0
"""Seconds a workflow may take to be read (waiting for a reader included) before the request
is refused; a reader thread still busy with it finishes in the background."""

T = TypeVar("T")


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on a worker thread: store calls, status documents, file reads."""
    return await to_thread.run_sync(partial(fn, *args, **kwargs))


@dataclass
class ServerContext:
    store: Store
    tokens: TokenSet
    webhook_secret: bytes | None
    engine: Engine | None
    metrics: Metrics
    runs_dir: Path
    work_dir: Path
    webhook_template: str = "pr"
    webhook_repos: frozenset[str] = frozenset()
    github_post_back: bool = False
    public_url: str | None = None
    github_api_url: str | None = None
    sse_poll: float = 0.2
    sse_keepalive: float = 15.0
    sse_max: float | None = 3600.0
    reviewflow_cmd: list[str] = field(default_factory=lambda: [sys.executable, "-m", "reviewflow"])
    parse_timeout: float = PARSE_TIMEOUT
    running: dict[str, asyncio.Task[RunState]] = field(default_factory=dict)
    wakers: dict[str, set[asyncio.Event]] = field(default_factory=dict)
    """Event streams waiting for a run's next transitions (set once this server's engine has
    written them: a stream wakes then instead of at its next poll)."""
    stopping: bool = False
    children: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(READERS))
    readers: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(
            READERS, thread_name_prefix="reviewflow-read"
        )
    )

    def wake(self, run_id: str) -> None:
        """The engine wrote transitions of `run_id` (called on the event loop)."""
        for waker in self.wakers.get(run_id, ()):
            waker.set()

    def post_back(self, repo: str, pr: int | None, run_id: str) -> PostBack | None:
        """Where a review run's result goes on GitHub, if this server posts results back."""
        if not self.github_post_back:
            return None
        details = f"{self.public_url}/ui/runs/{run_id}" if self.public_url else None
        return PostBack(repo=repo, pr=pr, details_url=details, api_url=self.github_api_url)

    # ------------------------------------------------------------------ off the loop

    async def reading(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a reader thread, answered within `parse_timeout` seconds: else 422
        (it took too long) or 503 (every reader was busy with other workflows meanwhile)."""
        started = concurrent.futures.Future[None]()

        def read() -> T:
            started.set_result(None)
            return fn(*args)

        job = asyncio.get_running_loop().run_in_executor(self.readers, read)
        try:
            return await asyncio.wait_for(job, self.parse_timeout)
        except TimeoutError:
            if not started.done():
                raise ApiError(
                    503,
                    f"busy reading other workflows for {self.parse_timeout:g} s: retry later",
                    headers={"Retry-After": "5"},
                ) from None
            raise ApiError(
                422,
                f"reading the workflow took longer than {self.parse_timeout:g} s: send a "
                "smaller one (or JSON, which reads faster than YAML)",
                "body",
            ) from None

    async def read_and_store(
        self, kind: str, body: bytes, run_id: str | None, meta: dict[str, str]
    ) -> Stored | Template | None:
        """A big body read and its run stored by a child process (reading.py), at most
        READERS at once; None when this body is read here (small, or an in-memory store)."""
        address = store_address(self.store)
        if len(body) <= BIG_BODY or address is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.parse_timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self.children.acquire()
        except TimeoutError:
            raise ApiError(
                503,
                f"busy reading other workflows for {self.parse_timeout:g} s: retry later",
                headers={"Retry-After": "5"},
            ) from None
        try:
            return await read_and_store(
                kind=kind,
                body=body,
                address=address,
                for_workers=self.engine is None and isinstance(self.store, PostgresStore),
                run_id=run_id,
                meta=meta,
                deadline=deadline,
                limit=self.parse_timeout,
                outbox_defaults=getattr(self.store, "outbox_defaults", None),
            )
        finally:
            self.children.release()

    # ------------------------------------------------------------------ execution

    def store_run(
        self, spec: WorkflowSpec, *, run_id: str | None, meta: dict[str, str]
    ) -> tuple[str, bool]:
        """Store a new run (on a worker thread): to be executed here (`spawn` it next, on the
        loop), or — without an engine, on PostgreSQL — queued for `reviewflow worker`s.
        Returns (run_id, created)."""
        if self.engine is None and isinstance(self.store, PostgresStore):
            from ..cluster.queue import Cluster

            return Cluster(self.store).submit(spec, run_id=run_id, meta=meta)
        engine = self.engine or Engine(self.store, runs_dir=self.runs_dir)
        return engine.submit(spec, run_id=run_id, meta=meta)

    async def submit(
        self, spec: WorkflowSpec, *, run_id: str | None, meta: dict[str, str]
    ) -> tuple[str, bool]:
        """Store a new run off the loop, then start executing it here if this server does.
        Returns (run_id, created)."""
        rid, created = await blocking(self.store_run, spec, run_id=run_id, meta=meta)
        if created:
            self.spawn(rid)
        return rid, created

    def spawn_stored(self, run_id: str) -> None:
        """Execute a run another process stored (a child read its big body)."""
        self.spawn(run_id)

    def spawn(self, run_id: str) -> bool:
        """Execute the run on this server's event loop (call from the loop); False if this
        server does not execute runs or already executes this one."""
        engine = self.engine
        if engine is None or self.stopping or run_id in self.running:
            return False
        task = asyncio.get_running_loop().create_task(self._execute(engine, run_id))
        self.running[run_id] = task
        task.add_done_callback(lambda t: self._ended(run_id, t))
        return True

    async def _execute(self, engine: Engine, run_id: str) -> RunState:
        """Execute a run here. A stored run's spec (one this engine did not submit) is read
        and validated on a thread first: for 20,000 tasks that is a second of CPU, which
        `execute` would otherwise spend on the loop, /health included."""
        if not engine.has_spec(run_id):
            try:
                record = await blocking(load_run, self.store, run_id)
                engine.prepare(run_id, await blocking(_stored_spec, record.spec))
            except Exception as exc:  # the engine meets it again at start and fails the run
                log.info("server.spec_unread", run_id=run_id, error=f"{type(exc).__name__}")
        if self.stopping:
            raise asyncio.CancelledError  # shut down while reading: left for the next start
        return await engine.execute(run_id)

    def _ended(self, run_id: str, task: asyncio.Task[RunState]) -> None:
        self.running.pop(run_id, None)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, RunBusy):
            log.info("server.run_busy", run_id=run_id, error=str(exc))
        elif exc is not None:
            log.warning("server.run_error", run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        else:
            log.info("server.run_end", run_id=run_id, state=task.result().value)

    def resume_orphans(self, scan: int = 1000) -> list[str]:
        """At startup: execute the runs no live process executes (left running by a server
        that died, or submitted and never started). Paused runs stay paused."""
        now = time.time()
        started: list[str] = []
        try:
            records = self.store.list_runs(scan)
        except ReviewflowError as exc:
            log.warning("server.resume_scan_failed", error=str(exc))
            return started
        for record in records:
            if record.mode:
                continue  # executed by workers, task by task
            orphan = record.state == RunState.RUNNING or (
                record.state == RunState.PENDING and now - record.created_at > ORPHAN_MIN_AGE
            )
            if (
                orphan
                and not owner_alive(record.owner, record.lease_until, now)
                and self.spawn(record.run_id)
            ):
                started.append(record.run_id)
        if started:
            log.info("server.resumed", runs=started)
        return started

    async def shutdown(self) -> None:
        """Stop executing: attempts are interrupted, the runs stay resumable."""
        self.stopping = True
        self.readers.shutdown(wait=False, cancel_futures=True)
        if self.engine is None:
            return
        self.engine.shutdown()
        tasks = list(self.running.values())
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT)

    def workers_alive(self) -> int:
        """This server when it executes runs, plus the live `reviewflow worker`s of a
        PostgreSQL database."""
        alive = int(self.engine is not None and not self.stopping)
        if isinstance(self.store, PostgresStore):
            from ..cluster.queue import list_workers

            # when the database does not answer, reviewflow_store_up says so
            with contextlib.suppress(ReviewflowError):
                alive += len(list_workers(self.store))
        return alive


def _stored_spec(text: str) -> WorkflowSpec:
    """What the engine's start would read (plugin folders loaded too), read here instead."""
    from ..config import stored_spec

    return stored_spec(text)


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.rf
    return ctx


RunIdParam = PathParam(
    pattern=RUN_ID_PATTERN,
    max_length=200,
    description="Letters, digits, `_`, `.`, `-` (at most 200), not starting with `.` or `-`.",
)


def load_run(store: Store, run_id: str) -> RunRecord:
    record = store.get_run(run_id)
    if record is None:
        raise ApiError(404, f"no run with id {run_id!r}", "run_id")
    return record
