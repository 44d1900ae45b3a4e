"""`reviewflow worker`: claims tasks of any workers-mode run in a PostgreSQL database and runs them.

One asyncio loop runs the attempts (the same task types as the embedded engine); database calls
run on two threads so the loop never blocks on them: one for claims and completions (the hot
path, group-committed: every outcome and start event since the last write goes in one
transaction), one for heartbeats, maintenance and small updates. A third thread LISTENs on a
dedicated autocommit connection (reconnecting after a database restart) and wakes the loop when
tasks become ready or attempts must stop; polling every `poll_interval` remains the fallback.

SIGTERM (or SIGINT) drains: no more claims, running attempts get `grace` seconds to finish,
those still running are then stopped and handed back (ready again, the attempt not counted),
and the process exits 0. A second signal hands back at once. SIGKILL loses nothing: the leases
of its attempts expire and any other worker's maintenance returns them to ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from ..attempts import ended, own_timeout, task_type_of
from ..constants import ABANDONED, ATTEMPT_TIMEOUT, DEFAULT_RUNS_DIR
from ..constants import DEFAULT_GRACE as DEFAULT_GRACE
from ..constants import DEFAULT_POLL_INTERVAL as DEFAULT_POLL_INTERVAL
from ..constants import DEFAULT_WORKER_CONCURRENCY as DEFAULT_WORKER_CONCURRENCY
from ..engine import INTERRUPTED
from ..errors import ReviewflowError, StoreError, TaskFailed
from ..errors import WorkerNameTaken as WorkerNameTaken
from ..executors import TaskContext
from ..logs import log
from ..notify.deliver import Deliverer
from ..store.postgres import PostgresStore, connect
from .dag import CHANNEL
from .queue import (
    DEFAULT_LEASE_TTL,
    DEFAULT_MAX_LOST_ATTEMPTS,
    Claimed,
    Cluster,
    Outcome,
    Pending,
    list_workers,
)

R = TypeVar("R")


class _Attempt:
    __slots__ = ("claimed", "detached", "handle", "key", "reason", "timer")

    def __init__(self, claimed: Claimed) -> None:
        self.claimed = claimed
        self.key = (claimed.run_id, claimed.name, claimed.attempt)
        self.handle: asyncio.Task[Any] | None = None
        self.reason: str | None = None  # why it was cancelled, if it was
        self.timer: asyncio.TimerHandle | None = None
        self.detached = False  # waits on a person: gave its slot back


class Worker:
    """One worker process's loop."""

    def __init__(
        self,
        store: PostgresStore,
        *,
        name: str | None = None,
        concurrency: int = DEFAULT_WORKER_CONCURRENCY,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        heartbeat_interval: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        grace: float = DEFAULT_GRACE,
        max_lost_attempts: int = DEFAULT_MAX_LOST_ATTEMPTS,
        runs_dir: str | Path = DEFAULT_RUNS_DIR,
        schedules: bool = True,
    ) -> None:
        self.store = store
        self.schedules = schedules  # fire the database's schedules too (reviewflow.schedules)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = concurrency
        self.cluster = Cluster(store, lease_ttl=lease_ttl, max_lost_attempts=max_lost_attempts)
        self.heartbeat_interval = heartbeat_interval or max(lease_ttl / 3, 0.05)
        self.poll_interval = poll_interval
        self.grace = grace
        self.runs_dir = Path(runs_dir)
        self.pending = Pending()
        self.attempts: dict[tuple[str, str, int], _Attempt] = {}
        self.completed = 0
        self._recording: set[tuple[str, str, int]] = set()
        self._last_beat = 0.0
        self._draining = False
        self._hand_back = False
        self._closed = threading.Event()
        self._wake: asyncio.Event | None = None
        self._claim_due = True
        """A claim may find something: set by a NOTIFY that tasks became ready, by a poll
        interval passing, by a claim that filled every free slot, or an error; cleared when a
        claim starts. Without it each record was followed by a claim round trip that found
        nothing (a chain step paid both)."""
        self._beat_now: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hot = ThreadPoolExecutor(1, thread_name_prefix="reviewflow-claims")
        self._cold = ThreadPoolExecutor(1, thread_name_prefix="reviewflow-upkeep")

    # ------------------------------------------------------------------ public

    @property
    def active(self) -> int:
        """Attempts holding a slot (a wait for a person gives its slot back)."""
        return sum(1 for a in self.attempts.values() if not a.detached)

    def drain(self) -> None:
        """Stop claiming; hand back what still runs after `grace` (a second call: now)."""
        if self._draining:
            self._hand_back = True
        self._draining = True
        self._poke()
        if self._beat_now is not None:
            self._beat_now.set()  # `reviewflow workers` shows it draining now, not next beat

    async def run(self) -> None:
        """Work until drained."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._beat_now = asyncio.Event()
        try:
            await self._cold_call(self._register)  # fails fast if the db is down or name taken
        except BaseException:
            self._hot.shutdown(wait=False)
            self._cold.shutdown(wait=False)
            raise
        self._last_beat = time.monotonic()
        listener = threading.Thread(target=self._listen, name="reviewflow-listen", daemon=True)
        listener.start()
        log.info(
            "worker.start", worker=self.name, owner=self.cluster.owner, concurrency=self.concurrency
        )
        upkeep = [
            asyncio.ensure_future(self._heartbeats()),
            asyncio.ensure_future(self._maintenance()),
        ]
        deliverer = Deliverer(self.store).start()  # notifications of any run, on its threads
        firing = self._fire_schedules()
        try:
            await self._main()
        finally:
            if firing is not None:
                firing[1].set()
                await asyncio.to_thread(firing[0].join, 10)
            await asyncio.to_thread(deliverer.stop)
            for task in upkeep:
                task.cancel()
            for task in upkeep:
                with contextlib.suppress(BaseException):
                    await task
            self._closed.set()
            with contextlib.suppress(StoreError):
                await self._cold_call(self.cluster.leave, self.name)
            self._hot.shutdown(wait=False)
            self._cold.shutdown(wait=False)
            log.info("worker.stop", worker=self.name, completed=self.completed)

    def _fire_schedules(self) -> tuple[threading.Thread, threading.Event] | None:
        """A scheduler thread: the runs of due slots are queued here like any submitted run."""
        if not self.schedules:
            return None
        from ..schedules import Scheduler

        def submit(spec: Any, run_id: str, meta: dict[str, str]) -> tuple[str, bool]:
            return self.cluster.submit(spec, run_id=run_id, meta=meta)

        return Scheduler(
            self.store,
            submit,
            owner=f"{self.name}-schedules",
            submit_many=self.cluster.submit_many,
        ).start()

    # ------------------------------------------------------------------ the loop

    async def _main(self) -> None:
        assert self._wake is not None
        backoff = 0.0
        drain_deadline: float | None = None
        while True:
            if self._draining:
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + self.grace
                    log.info("worker.draining", worker=self.name, running=len(self.attempts))
                if self._hand_back or time.monotonic() >= drain_deadline:
                    self._interrupt_all()
                if not self.attempts and not self.pending:
                    return
            try:
                worked = False
                if self.pending:
                    batch, self.pending = self.pending, Pending()
                    self._recording = {(o.run_id, o.name, o.attempt) for o in batch.outcomes}
                    take = 0 if self._draining else self.concurrency - self.active
                    if take > 0:
                        self._claim_due = False  # the record claims too; a NOTIFY sets it again
                    try:
                        handed = await self._hot_call(self._record, batch, take)
                    except BaseException:
                        self._recording = set()
                        batch.outcomes += self.pending.outcomes  # kept for the next try
                        batch.events += self.pending.events
                        batch.resent = True  # it may have committed: the reply was lost
                        self.pending = batch
                        raise
                    self._recording = set()
                    for c in handed:  # attempts started in that transaction
                        if not c.recorded:  # a run that transaction did not lock: next time
                            self.pending.events.append(c.event)
                        self._start(c)
                    if take > 0 and len(handed) >= take:
                        self._claim_due = True  # it filled every free slot: more may wait
                    worked = True
                free = self.concurrency - self.active
                # Outcomes that came in meanwhile go first: their record claims for the slots
                # they free in the same transaction (a claim of its own was one more commit).
                if (
                    free > 0
                    and not self._draining
                    and self._claim_due
                    and not self.pending.outcomes
                ):
                    self._claim_due = False  # a NOTIFY during the claim sets it again
                    claimed = await self._hot_call(self._claim, free)
                    if len(claimed) >= free:
                        self._claim_due = True  # more may be waiting
                    for c in claimed:
                        if not c.recorded:
                            self.pending.events.append(c.event)
                        self._start(c)
                    if claimed:
                        worked = True
                        await asyncio.sleep(0)  # let quick attempts finish before the write
                backoff = 0.0
            except ReviewflowError as exc:  # the database, or a run it cannot handle now
                self._claim_due = True
                backoff = min(max(backoff * 2, 0.2), 5.0)
                log.warning("worker.db_error", worker=self.name, error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                continue
            if worked:
                continue
            timeout = self.poll_interval
            if drain_deadline is not None:
                timeout = min(timeout, max(drain_deadline - time.monotonic(), 0.01))
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                self._claim_due = True  # the poll: tasks may be ready with no NOTIFY heard
            self._wake.clear()

    def _claim(self, n: int) -> list[Claimed]:
        return self.cluster.claim(n, start_events=True)

    def _record(self, batch: Pending, take: int) -> list[Claimed]:
        rejected, handed = self.cluster.record_and_take(batch, take)
        for o in rejected:
            log.warning(
                "worker.late_completion",
                worker=self.name,
                run_id=o.run_id,
                task=o.name,
                attempt=o.attempt,
                kind=o.kind,
            )
        return handed

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _hot_call(self, fn: Callable[..., R], *args: Any) -> R:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._hot, partial(fn, *args))

    async def _cold_call(self, fn: Callable[..., R], *args: Any, **kw: Any) -> R:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._cold, partial(fn, *args, **kw))

    # ------------------------------------------------------------------ upkeep

    def _register(self) -> None:
        for other in list_workers(self.store):
            if other["name"] == self.name and not self._was_me(other):
                raise WorkerNameTaken(
                    f"a live worker is already named {self.name!r} (pid {other['pid']} on "
                    f"{other['host']}): give this one another --name"
                )
        self._beat()

    @staticmethod
    def _was_me(other: dict[str, Any]) -> bool:
        """A row of this name left by an earlier process of this host that is gone (a
        restarted container keeps its hostname and often its pid): taken over."""
        if other["host"] != socket.gethostname():
            return False
        if other["pid"] == os.getpid():
            return True
        try:
            os.kill(other["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _beat(self) -> dict[tuple[str, str, int], str | None]:
        return self.cluster.heartbeat(
            self.name,
            concurrency=self.concurrency,
            running=len(self.attempts),
            state="draining" if self._draining else "running",
        )

    async def _heartbeats(self) -> None:
        assert self._beat_now is not None
        interval = self.heartbeat_interval
        unknown: set[tuple[str, str, int]] = set()
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that comes as
            # the event is set (drain() sets it), and the worker never stopped.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._beat_now.wait()
            self._beat_now.clear()
            before = set(self.attempts)
            try:
                alive = await self._cold_call(self._beat)
            except ReviewflowError as exc:
                log.warning("worker.heartbeat_failed", worker=self.name, error=str(exc))
                interval = min(self.poll_interval, self.heartbeat_interval)  # retry soon
                continue
            interval = self.heartbeat_interval
            self._last_beat = time.monotonic()
            # Attempts the database says are ours but this process does not run (a claim whose
            # reply was lost): handed back once seen twice, so none stays leased forever.
            strays = {k for k in alive if k not in self.attempts and k not in before}
            lost = [k for k in strays & unknown if not self._outcome_pending(k)]
            unknown = strays - set(lost)
            if lost:
                self.pending.outcomes.extend(
                    Outcome(
                        r,
                        n,
                        a,
                        "lost",
                        error=f"attempt {a} leased to {self.name}, "
                        "which never learned of it (the claim's reply was lost)",
                    )
                    for r, n, a in lost
                )
                self._poke()
            for key in before:
                attempt = self.attempts.get(key)
                if attempt is None:
                    continue
                if key not in alive:
                    self._cancel(attempt, ABANDONED)  # the lease expired: someone else's now
                elif reason := alive[key]:
                    self._cancel(attempt, reason)

    def _outcome_pending(self, key: tuple[str, str, int]) -> bool:
        return (
            any((o.run_id, o.name, o.attempt) == key for o in self.pending.outcomes)
            or key in self._recording
        )

    async def _maintenance(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            if time.monotonic() - self._last_beat > self.heartbeat_interval * 1.5:
                continue  # cut off from the database lately: judge no one else's leases
            try:
                await self._cold_call(self.cluster.maintain)
            except Exception as exc:  # one bad pass must not end maintenance for good
                log.warning(
                    "worker.maintenance_failed",
                    worker=self.name,
                    error=f"{type(exc).__name__}: {exc}",
                )

    def _listen(self) -> None:
        """LISTEN on a dedicated autocommit connection; reconnect until the worker stops."""
        delay = 0.2
        while not self._closed.is_set():
            try:
                with connect(self.store.url) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.2
                    self._from_thread("")  # something may have become ready while deaf
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=0.5, stop_after=64):
                            self._from_thread(note.payload)
            except (StoreError, psycopg.Error) as exc:
                log.debug("worker.listen_failed", worker=self.name, error=str(exc))
                self._closed.wait(delay)
                delay = min(delay * 2, 5.0)

    def _from_thread(self, payload: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._notified, payload)

    def _notified(self, payload: str) -> None:
        if payload == "cancel":
            if self._beat_now is not None and self.attempts:
                self._beat_now.set()
        else:
            self._claim_due = True
            self._poke()

    # ------------------------------------------------------------------ attempts

    def _start(self, c: Claimed) -> None:
        assert self._loop is not None
        attempt = _Attempt(c)
        self.attempts[attempt.key] = attempt
        attempt.handle = self._loop.create_task(self._execute(attempt))
        attempt.handle.add_done_callback(partial(self._ended, attempt))

    def _cancel(self, attempt: _Attempt, reason: str) -> None:
        if attempt.reason is None and attempt.handle is not None:
            attempt.reason = reason
            attempt.handle.cancel()

    def _interrupt_all(self) -> None:
        for attempt in list(self.attempts.values()):
            self._cancel(attempt, INTERRUPTED)

    async def _execute(self, attempt: _Attempt) -> Any:
        c = attempt.claimed
        if c.spec is None:
            raise TaskFailed(c.problem or "the run's workflow cannot be read", retryable=False)
        spec = c.spec
        task_type = task_type_of(spec)
        timeout = own_timeout(task_type, spec)
        if timeout is not None:
            assert self._loop is not None
            attempt.timer = self._loop.call_later(timeout, self._cancel, attempt, ATTEMPT_TIMEOUT)
        ctx = TaskContext(
            c.run_id,
            c.name,
            c.attempt,
            spec.params,
            c.results,
            c.meta,
            self.runs_dir / c.run_id,
            spec,
            partial(self._set_pid, attempt),
            c.failures,
            self.store,
            partial(self._note, attempt),
            partial(self._waiting, attempt),
            partial(self._run_view, c.run_id),
        )
        result = await task_type.execute(ctx)
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise TaskFailed(f"the result is not JSON: {exc}", retryable=False) from None
        return result

    def _ended(self, attempt: _Attempt, handle: asyncio.Task[Any]) -> None:
        self.attempts.pop(attempt.key, None)
        if attempt.timer is not None:
            attempt.timer.cancel()
        c = attempt.claimed
        outcome = Outcome(c.run_id, c.name, c.attempt, "failed")
        if handle.cancelled():
            reason = attempt.reason
            if reason is ABANDONED or reason is None:
                return  # the lease is gone: another worker has (or will have) the task
            if reason is ATTEMPT_TIMEOUT:
                timeout = c.spec.timeout if c.spec else 0
                outcome.error, outcome.timed_out = f"timed out after {timeout:g}s", True
            elif reason is INTERRUPTED:
                outcome.kind, outcome.error = "interrupted", "handed back by a stopping worker"
            else:
                outcome.kind, outcome.error = "cancelled", reason
        else:
            exc = handle.exception()
            end = ended(exc, handle.result() if exc is None else None)
            if end.kind == "succeeded":
                outcome.kind, outcome.result = "succeeded", end.result
                self.completed += 1
            elif end.kind == "store":  # not the task's failure: handed back, uncounted
                outcome.kind, outcome.error = "interrupted", end.error
            else:
                outcome.error, outcome.retryable = end.error, end.retryable
        self.pending.outcomes.append(outcome)
        self._poke()

    def _set_pid(self, attempt: _Attempt, pid: int) -> None:
        c = attempt.claimed
        self._background(self.cluster.detail, c.run_id, c.name, c.attempt, pid=pid)

    def _note(self, attempt: _Attempt, detail: str) -> None:
        c = attempt.claimed
        self.pending.events.append(
            (c.run_id, c.name, "running", "running", c.attempt, time.time(), detail)
        )
        self._poke()

    def _waiting(self, attempt: _Attempt, reason: str | None) -> None:
        c = attempt.claimed
        if reason is not None and not attempt.detached:
            attempt.detached = True
            self._poke()  # a slot is free
        self._background(self.cluster.detail, c.run_id, c.name, c.attempt, wait_reason=reason)

    def _background(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        def run() -> None:
            try:
                fn(*args, **kw)
            except StoreError as exc:
                log.warning("worker.update_failed", worker=self.name, error=str(exc))

        self._cold.submit(run)

    def _run_view(self, run_id: str) -> dict[str, dict[str, Any]]:
        graph = self.cluster.graphs.get(run_id)
        view = {}
        for t in self.store.get_tasks(run_id):
            spec = graph.tasks.get(t.name) if graph else None
            view[t.name] = {
                "state": t.state,
                "attempts": t.attempts,
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "error": t.error,
                "needs": list(spec.needs) if spec else [],
                "type": spec.type if spec else "",
                "hook": bool(graph and t.name in graph.hooks),
            }
        return view


def run_worker(store: PostgresStore, **options: Any) -> int:
    """Run a worker until SIGTERM/SIGINT; returns the exit code (0 after a drain)."""
    worker = Worker(store, **options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.drain)
        await worker.run()

    asyncio.run(main())
    return 0
