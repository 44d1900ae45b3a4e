"""What the routes share: the store, the engine (when this server executes runs), settings."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

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
from .schemas import RUN_ID_PATTERN

SHUTDOWN_WAIT = 15.0
"""Seconds shutdown waits for interrupted attempts to stop (the default kill_grace is 5 s)."""
ORPHAN_MIN_AGE = 30.0
"""A pending run younger than this may be about to be executed by the process that created
it (`reviewflow run` submits, then claims): startup leaves it alone."""


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
    sse_poll: float = 0.2
    sse_keepalive: float = 15.0
    sse_max: float | None = 3600.0
    reviewflow_cmd: list[str] = field(default_factory=lambda: [sys.executable, "-m", "reviewflow"])
    running: dict[str, asyncio.Task[RunState]] = field(default_factory=dict)
    stopping: bool = False

    # ------------------------------------------------------------------ execution

    def submit(
        self, spec: WorkflowSpec, *, run_id: str | None, meta: dict[str, str]
    ) -> tuple[str, bool]:
        """Store a new run: executed here, or — without an engine, on PostgreSQL — queued for
        `reviewflow worker`s. Returns (run_id, created)."""
        if self.engine is None and isinstance(self.store, PostgresStore):
            from ..cluster.queue import Cluster

            return Cluster(self.store).submit(spec, run_id=run_id, meta=meta)
        engine = self.engine or Engine(self.store, runs_dir=self.runs_dir)
        rid, created = engine.submit(spec, run_id=run_id, meta=meta)
        if created:
            self.spawn(rid)
        return rid, created

    def spawn(self, run_id: str) -> bool:
        """Execute the run on this server's event loop (call from the loop); False if this
        server does not execute runs or already executes this one."""
        engine = self.engine
        if engine is None or self.stopping or run_id in self.running:
            return False
        task = asyncio.get_running_loop().create_task(engine.execute(run_id))
        self.running[run_id] = task
        task.add_done_callback(lambda t: self._ended(run_id, t))
        return True

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
        started = []
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
