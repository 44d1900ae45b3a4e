"""The engine: executes runs to a terminal state, durably, in one asyncio loop.

Each live run is held in memory (`runtime.LiveRun`) and mirrored to the store in batches: every
state change appends an event and marks its task dirty; a flush `flush_interval` seconds later
writes them in one transaction (group commit), and a heartbeat every `heartbeat_interval` renews
the run's lease and picks up requests (cancel, pause, resume) left by other processes.

Dependency counters drive scheduling: finishing a task decrements its dependents' counters and
those reaching zero become ready — no rescans. Claim order and limits live in `scheduler`.

Failure policy `fail_fast` (default): the first task that fails for good fails the run; tasks not
started are cancelled and running ones are cancelled too (their processes get SIGTERM, then
SIGKILL), so a failing review reports as soon as possible. `continue`: independent branches go on
and dependents of a failed task are `skipped`. Either way `on_failure` tasks then run.

Recovery: `execute` of a run that a dead process owned turns its `running` tasks back to `ready`
(reason "lost", the attempt counted) and carries on. Completion is recorded exactly once: a
zombie owner's writes are refused by the store (LeaseLost).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from . import rules
from .attempts import AttemptExecution
from .config import stored_spec
from .constants import ABANDONED as ABANDONED
from .constants import ATTEMPT_TIMEOUT as ATTEMPT_TIMEOUT
from .constants import CANNOT_ADVANCE as CANNOT_ADVANCE
from .constants import CANNOT_START as CANNOT_START
from .constants import DEFAULT_CONCURRENCY as DEFAULT_CONCURRENCY
from .constants import DEFAULT_RUNS_DIR as DEFAULT_RUNS_DIR
from .constants import RUN_ID as RUN_ID
from .errors import (
    InvalidTransition,
    LeaseLost,
    RunNotFound,
    StoreError,
)
from .errors import RunBusy as RunBusy
from .executors import registry
from .executors.shell import kill_orphans
from .logs import log
from .owners import live_owners as _live_owners
from .owners import owner_alive as owner_alive
from .rules import INTERRUPTED as INTERRUPTED
from .rules import LOST as LOST
from .rules import RUN_TIMEOUT as RUN_TIMEOUT
from .rules import SKIPPED_DETAIL as SKIPPED_DETAIL
from .rules import Verdict
from .runtime import LiveRun, LiveTask
from .scheduler import DEFAULT_AGING_INTERVAL, ReadyQueue
from .spec import TaskSpec, WorkflowSpec
from .states import (
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    RunState,
    TaskState,
)
from .store import MemoryStore, RunRecord, Store
from .store.base import Batch
from .submit import new_run_id as new_run_id
from .submit import run_id_for as run_id_for
from .submit import submit_run

T = TaskState

"""Run ids name a directory under the runs folder: no separators, no leading dot."""

Observer = Callable[[str, str | None, str | None, str, int | None, str | None], None]
"""Called on every transition: (run_id, task or None, from_state, to_state, attempt, detail)."""


def durable_wait(spec: TaskSpec) -> bool:
    """Task types whose attempt only waits on a stored signal (an approval): losing the
    process that waited costs nothing, so it never uses up the task's retries."""
    try:
        return bool(getattr(registry.get(spec.type), "durable_wait", False))
    except KeyError:
        return False


class Engine(AttemptExecution):
    """Executes workflow runs against a store. One engine per process is the usual shape."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        key_limits: dict[str, int] | None = None,
        aging_interval: float = DEFAULT_AGING_INTERVAL,
        runs_dir: str | Path = DEFAULT_RUNS_DIR,
        flush_interval: float = 0.05,
        heartbeat_interval: float = 0.5,
        lease_ttl: float = 30.0,
        observer: Observer | None = None,
        rand: Callable[[], float] = random.random,
        gc_gen0_threshold: int | None = 50_000,
    ) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.queue = ReadyQueue(max_concurrency, aging_interval=aging_interval, on_wait=self._mark)
        self._fixed_key_limits = dict(key_limits or {})
        self.queue.key_limits.update(self._fixed_key_limits)
        self.runs_dir = Path(runs_dir)
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.lease_ttl = lease_ttl
        self.observer = observer
        self._rand = rand
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._live: dict[str, LiveRun] = {}
        self._specs: dict[str, WorkflowSpec] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.gc_gen0_threshold = gc_gen0_threshold
        self._gc_saved: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ public API

    def submit(
        self, spec: WorkflowSpec, *, run_id: str | None = None, meta: dict[str, str] | None = None
    ) -> tuple[str, bool]:
        """Store a new run (all tasks blocked). Returns (run_id, created); an existing id is
        left untouched and reported with created=False (idempotency key)."""
        run_id, created = submit_run(self.store, spec, run_id=run_id, meta=meta)
        if created:
            self._specs[run_id] = spec
        return run_id, created

    async def run(
        self, spec: WorkflowSpec, *, run_id: str | None = None, meta: dict[str, str] | None = None
    ) -> RunState:
        """Submit and execute a run; returns its final state."""
        run_id, _ = self.submit(spec, run_id=run_id, meta=meta)
        return await self.execute(run_id)

    async def execute(self, run_id: str, *, force: bool = False, cancel: bool = False) -> RunState:
        """Execute (or carry on) a stored run until it ends; returns its final state.

        Takes over a run whose owner died; raises RunBusy if a live process owns it (unless
        `force`). A paused run is resumed. Returns RUNNING if interrupted by `shutdown`.
        With `cancel`, the run is taken over only to be cancelled (nothing new starts).
        """
        self._loop = asyncio.get_running_loop()
        live = self._live.get(run_id)
        if live is not None and live.done is not None:
            return await asyncio.shield(live.done)  # already executing here: wait for it
        # A run this engine submitted: its spec is at hand, the stored JSON need not be read.
        record = self.store.get_run(run_id, spec=run_id not in self._specs)
        if record is None:
            raise RunNotFound(run_id)
        if RunState(record.state) in RUN_TERMINAL:
            return RunState(record.state)
        if record.mode:
            raise RunBusy(
                f"run {run_id!r} is executed by workers (`reviewflow worker`), not by one process"
            )
        self._claim(record, force=force)
        _live_owners.add(self.owner)
        if not self._live:
            self._tune_gc()
        try:
            run: LiveRun | None = None
            done: asyncio.Future[RunState] = self._loop.create_future()
            try:
                run = self._load(record)
                stored = RunState(record.state)
                self._live[run_id] = run
                run.done = done
                self._begin(run, stored, cancel=cancel)
            except StoreError as exc:  # the store failed, not the run: it stays resumable
                if run is None or isinstance(exc, RunNotFound):
                    with contextlib.suppress(StoreError):
                        self.store.release_run(run_id, self.owner)
                    raise
                if isinstance(exc, LeaseLost):
                    self._abandon(run, exc)
                else:
                    self._store_fault(run, exc)
            except Exception as exc:  # whatever it is, the run must not stay pending
                return self._broken(run_id, run, exc, CANNOT_START)
            if self._heartbeat_handle is None:
                self._heartbeat_handle = self._loop.call_later(
                    self.heartbeat_interval, self._heartbeat
                )
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                # The caller gave up: stop this run's attempts (their processes too) and leave
                # it resumable, as `shutdown` does, before letting the cancellation through.
                if not done.done():
                    self._interrupt(run)
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(done)
                raise
        finally:
            self._live.pop(run_id, None)
            if not self._live:
                self._restore_gc()
                for handle in (self._heartbeat_handle, self._flush_handle):
                    if handle is not None:
                        handle.cancel()
                self._heartbeat_handle = self._flush_handle = None

    def _tune_gc(self) -> None:
        """Collect the youngest generation less often while runs execute.

        Each attempt allocates a handful of short-lived containers; with the default threshold
        (700) its cost grows faster than the run (measured on 2 cores: 100k no-op tasks took
        15x the time of 10k; with 50,000 about 9x, and 30% faster). Restored afterwards.
        """
        if self.gc_gen0_threshold:
            self._gc_saved = gc.get_threshold()
            gen0, *older = self._gc_saved
            gc.set_threshold(max(gen0, self.gc_gen0_threshold), *older)

    def _restore_gc(self) -> None:
        if self._gc_saved is not None:
            gc.set_threshold(*self._gc_saved)
            self._gc_saved = None

    def cancel(self, run_id: str, reason: str = "cancelled by user") -> None:
        """Cancel a run: here if this engine runs it, otherwise by request to its owner."""
        run = self._live.get(run_id)
        if run is not None:
            self._stop_run(run, rules.Stop(RunState.CANCELLED, reason))
        else:
            self.store.request(run_id, "cancel")

    def pause(self, run_id: str) -> None:
        """No new task of the run starts until `resume`; running tasks finish."""
        run = self._live.get(run_id)
        if run is not None:
            self._pause(run)
        else:
            self.store.request(run_id, "pause")

    def resume(self, run_id: str) -> None:
        """Undo `pause`."""
        run = self._live.get(run_id)
        if run is not None:
            self._unpause(run)
        else:
            self.store.request(run_id, "resume")

    def prepare(self, run_id: str, spec: WorkflowSpec) -> None:
        """Hand over a stored run's spec, read elsewhere (a server reads big ones on a
        thread): `execute` then does not parse it again on the event loop."""
        self._specs[run_id] = spec

    def has_spec(self, run_id: str) -> bool:
        """Whether `execute(run_id)` has the run's spec already (`submit`, `prepare`), or
        would read it from the store."""
        return run_id in self._specs

    def live_run(self, run_id: str) -> LiveRun | None:
        """The in-memory state of a run this engine is executing (for progress views)."""
        return self._live.get(run_id)

    def shutdown(self) -> None:
        """Stop executing: running attempts are cancelled (processes killed) and put back to
        `ready` without counting the attempt; runs stay resumable."""
        self._stopping = True
        for run in list(self._live.values()):
            self._interrupt(run)

    def _interrupt(self, run: LiveRun) -> None:
        run.halted = True
        for task in run.tasks.values():
            if task.state is T.RUNNING and task.handle is not None and task.cancel_reason is None:
                self._cancel_attempt(task, INTERRUPTED)
        run.outcome = RunState.RUNNING  # marks "interrupted": finish without a final state
        self._check_done(run)

    # ------------------------------------------------------------------ claim and load

    def _claim(self, record: RunRecord, *, force: bool) -> None:
        now = time.time()
        if (
            record.owner
            and record.owner != self.owner
            and not force
            and owner_alive(record.owner, record.lease_until, now)
        ):
            raise RunBusy(
                f"run {record.run_id!r} is being executed by {record.owner}"
                f" (lease until {datetime.fromtimestamp(record.lease_until or 0):%H:%M:%S})"
            )
        if not self.store.claim_run(record.run_id, self.owner, now + self.lease_ttl, record.owner):
            raise RunBusy(f"run {record.run_id!r} was claimed by another process first")

    def _load(self, record: RunRecord) -> LiveRun:
        spec = self._specs.pop(record.run_id, None)
        if spec is None:
            spec = stored_spec(record.spec)  # (loads its plugin folders)
        # The spec's JSON (~440 bytes a task) is not needed past this point, and `execute`
        # holds the record for the whole run: let it go before the live tasks are built.
        record.spec = ""
        rows = self.store.get_tasks(record.run_id) if record.state != RunState.PENDING else []
        run = LiveRun.load(record, spec, rows, self.runs_dir / record.run_id)
        for key, limit in spec.key_limits().items():
            self.queue.key_limits.setdefault(key, limit)
        return run

    def _begin(self, run: LiveRun, stored: RunState, *, cancel: bool = False) -> None:
        """Start a loaded run: recover what a dead owner left, then schedule."""
        assert self._loop is not None
        now = time.time()
        if cancel:
            self._run_to_detail(run, "taken over to cancel", now)
            self._recover_lost(run, now)
            self._stop_run(run, rules.cancel_requested())
            self._check_done(run)
            return
        if stored is RunState.PENDING:
            run.started_at = now
            self._run_to(run, RunState.RUNNING, now=now)
        elif stored is RunState.PAUSED:
            self._run_to(run, RunState.RUNNING, "resumed", now=now)
        else:
            self._run_to_detail(run, "taken over by " + self.owner, now)
        spec = run.spec
        if spec.not_before is not None:
            run.not_before = rules.absolute(spec.not_before, run.created_at)
        if spec.timeout:
            run.timeout_handle = self._loop.call_later(spec.timeout, self._run_timed_out, run)
        self._count_open(run)
        main = [t for t in run.tasks.values() if not t.hook]
        self._recover(run, main, now)
        stop = rules.recovered(spec.failure_policy, (t.state for t in main), run.error)
        if stop is not None and run.outcome is None:
            self._stop_run(run, stop)
        hooks_begun = any(t.hook and t.state is not T.BLOCKED for t in run.tasks.values())
        if hooks_begun:
            run.hooks_started = True
            run.outcome = RunState.FAILED
            self._recover(run, [t for t in run.tasks.values() if t.hook], now)
        self._dispatch()
        self._check_done(run)
        self._schedule_flush()

    def _recover(self, run: LiveRun, tasks: list[LiveTask], now: float) -> None:
        """Bring tasks loaded from the store back to life (a no-op for a fresh run)."""
        assert self._loop is not None
        for task in tasks:
            state = task.state
            if state is T.RUNNING:
                self._lost(task, now)
            elif state is T.TIMED_OUT:
                verdict = rules.retry_or_fail(
                    task.name,
                    task.error or "timed out",
                    retry=task.spec.retry,
                    used=task.attempts,
                    attempts=task.attempts,
                    retryable=True,
                    stopping=run.outcome is not None,
                    hook=task.hook,
                    failure_policy=run.spec.failure_policy,
                    now=now,
                    jitter=self._rand(),
                )
                self._apply(task, verdict, now)
            elif state is T.READY:
                self.queue.push(task)
            elif state is T.RETRY_WAIT:
                due = (task.next_attempt_at or now) - now
                task.timer = self._loop.call_later(max(due, 0.0), self._retry_due, task)
        for task in tasks:
            if task.state is not T.BLOCKED or (task.hook and not run.hooks_started):
                continue
            if not task.spec.needs:  # a root: the common case, kept cheap for wide runs
                task.remaining = 0
                self._deps_met(task, now, run.started_at or now)
                continue
            deps = [run.tasks[d] for d in task.spec.needs]
            task.remaining, skip = rules.remaining(task.spec.trigger, (d.state for d in deps))
            if skip:
                self._task_to(task, T.SKIPPED, SKIPPED_DETAIL, now)
                self._skip_dependents_of([task], now)
                continue
            if task.remaining == 0:
                self._deps_met(
                    task,
                    now,
                    max((d.finished_at or now for d in deps), default=run.started_at or now),
                )

    @staticmethod
    def _count_open(run: LiveRun) -> None:
        """Set the run's counts of tasks not yet ended (main tasks, on_failure tasks)."""
        open_main = open_hooks = 0
        for task in run.tasks.values():
            if task.state not in TASK_TERMINAL:
                if task.hook:
                    open_hooks += 1
                else:
                    open_main += 1
        run.open, run.open_hooks = open_main, open_hooks

    def _recover_lost(self, run: LiveRun, now: float) -> None:
        self._count_open(run)
        for task in run.tasks.values():
            if task.state is T.RUNNING:
                self._kill_orphans(task)
                task.ready_at = now
                self._task_to(task, T.READY, f"{LOST}: the process running it died", now)
            elif task.state is T.TIMED_OUT:
                self._task_to(task, T.FAILED, task.error, now)

    def _lost(self, task: LiveTask, now: float) -> None:
        """The process running the attempt died: in the embedded engine the attempt counts
        against the task's retries."""
        self._kill_orphans(task)
        run = task.run
        verdict = rules.attempt_lost(
            task.name,
            rules.embedded_lost_detail(task.attempts),
            hook=task.hook,
            cancel_reason=None,
            stopping=run.outcome is not None,
            run_error=run.error,
            lost=task.attempts,
            max_lost=task.spec.retry.max_retries + 1,
            durable=durable_wait(task.spec),
            failed_message=None,
            failure_policy=run.spec.failure_policy,
        )
        self._apply(task, verdict, now)
        if verdict.state is T.READY:
            self.queue.push(task)

    # ------------------------------------------------------------------ transitions

    def _mark(self, task: LiveTask) -> None:
        task.run.dirty[task] = None
        self._schedule_flush()

    def _task_to(
        self, task: LiveTask, to: TaskState, detail: str | None = None, now: float | None = None
    ) -> None:
        frm = task.state
        if to not in TASK_TRANSITIONS[frm]:
            raise InvalidTransition("task", task.name, frm, to)
        if now is None:
            now = time.time()
        task.state = to
        run = task.run
        # Plain-str states: a tuple of atomic values is not tracked by the cyclic GC, so the
        # events of a large run add nothing to its full collections.
        run.events.append(
            (run.run_id, task.name, frm._value_, to._value_, task.attempts, now, detail)
        )
        run.dirty[task] = None
        if to in TASK_TERMINAL:
            task.finished_at = now
            task.wait_reason = None
            if task.hook:
                run.open_hooks -= 1
            else:
                run.open -= 1
        if self._flush_handle is None:
            self._schedule_flush()

    def _run_to(
        self, run: LiveRun, to: RunState, detail: str | None = None, now: float | None = None
    ) -> None:
        frm = run.state
        if to not in RUN_TRANSITIONS[frm]:
            raise InvalidTransition("run", run.run_id, frm, to)
        if now is None:
            now = time.time()
        run.state = to
        run.events.append((run.run_id, None, frm._value_, to._value_, None, now, detail))
        run.run_dirty = True
        self._schedule_flush()

    def _observe(self, *event: Any) -> None:
        """Tell the observer; one that fails is dropped, never the transition it watched."""
        assert self.observer is not None
        try:
            self.observer(*event)
        except Exception as exc:
            log.warning("observer.failed", error=f"{type(exc).__name__}: {exc}")
            self.observer = None

    def _run_to_detail(self, run: LiveRun, detail: str, now: float) -> None:
        """An event that records something about the run without changing its state."""
        state = run.state.value
        run.events.append((run.run_id, None, state, state, None, now, detail))

    # ------------------------------------------------------------------ scheduling

    def _deps_met(self, task: LiveTask, now: float, since: float) -> None:
        """All dependencies succeeded at `since`: ready now, or after `delay`/`not_before`."""
        spec = task.spec
        due = rules.due_at(
            since,
            delay=spec.delay,
            not_before=None
            if spec.not_before is None
            else rules.absolute(spec.not_before, task.run.created_at),
            run_not_before=task.run.not_before,
            has_needs=bool(spec.needs),
        )
        if not rules.ready_now(due, now):
            assert self._loop is not None
            task.wait_reason = rules.delayed_reason(due)
            self._mark(task)
            task.timer = self._loop.call_later(due - now, self._delay_due, task)
        else:
            self._make_ready(task, now)

    def _delay_due(self, task: LiveTask) -> None:
        task.timer = None
        if task.state is T.BLOCKED and task.run.run_id in self._live:
            task.wait_reason = None
            self._guarded(task, self._ready_now, task)

    def _retry_due(self, task: LiveTask) -> None:
        task.timer = None
        if task.state is T.RETRY_WAIT and task.run.run_id in self._live:
            task.next_attempt_at = None
            self._guarded(task, self._ready_now, task)

    def _ready_now(self, task: LiveTask) -> None:
        self._make_ready(task, time.time())
        self._dispatch()

    def _make_ready(self, task: LiveTask, now: float) -> None:
        task.ready_at = now
        self._task_to(task, T.READY, None, now)
        self.queue.push(task)

    def _dispatch(self) -> None:
        if self._stopping:
            return
        queue = self.queue
        loop = self._loop
        assert loop is not None
        while True:
            task = queue.pop()
            if task is None:
                return
            self._start(task, loop)

    def _succeeded(self, task: LiveTask, result: Any) -> None:
        self._end_attempt(task)
        run = task.run
        if run.run_id not in self._live:
            return
        now = time.time()
        task.result = result
        task.error = None
        self._task_to(task, T.SUCCEEDED, None, now)
        dependents = task.dependents
        queue = self.queue
        # Start each dependent as soon as it is ready (instead of readying all, then starting
        # all) when claim order cannot matter: nothing else is queued, no run limit applies and
        # the global limit has room for every dependent.
        eager = (
            queue.idle
            and run.max_concurrency is None
            and not self._stopping
            and run.state is RunState.RUNNING
            and not run.halted
            and queue.running + len(dependents) <= queue.global_limit
        )
        loop = self._loop
        assert loop is not None
        for dep in dependents:
            dep.remaining -= 1
            if dep.remaining == 0 and dep.state is T.BLOCKED:
                spec = dep.spec
                if (
                    eager
                    and spec.concurrency_key is None
                    and not spec.delay
                    and spec.not_before is None
                ):
                    # Ready and claimed at once: no heap round trip.
                    dep.ready_at = now
                    self._task_to(dep, T.READY, None, now)
                    queue.claim(dep)
                    self._start(dep, loop)
                else:
                    self._deps_met(dep, now, now)
        self._dispatch()
        self._check_done(run)

    def _settle(
        self,
        task: LiveTask,
        message: str | None,
        retryable: bool,
        *,
        timed_out: bool = False,
        cancelled: bool = False,
    ) -> None:
        """An attempt ended without success: retry, fail, or record the cancellation."""
        self._end_attempt(task)
        run = task.run
        if run.run_id not in self._live or message is None:
            self._dispatch_if_live()
            return
        now = time.time()
        if cancelled:
            reason = task.cancel_reason or "cancelled"
            if reason == INTERRUPTED:
                # Only attempts not stopped for another reason are interrupted (`_interrupt`).
                verdict = rules.attempt_interrupted(
                    INTERRUPTED,
                    cancel_reason=None,
                    stopping=False,
                    hook=task.hook,
                    run_error=run.error,
                )
            else:
                verdict = rules.attempt_cancelled(reason)
        else:
            verdict = rules.attempt_failed(
                task.name,
                message,
                retry=task.spec.retry,
                used=task.attempts,
                attempts=task.attempts,
                retryable=retryable,
                timed_out=timed_out,
                stopping=run.outcome is not None,
                hook=task.hook,
                failure_policy=run.spec.failure_policy,
                now=now,
                jitter=self._rand(),
            )
        self._apply(task, verdict, now)
        self._dispatch()
        self._check_done(run)

    def _apply(self, task: LiveTask, verdict: Verdict, now: float) -> None:
        """Apply the rule book's verdict on an attempt's end to `task` (see rules.Verdict)."""
        if verdict.uncount:
            task.attempts -= 1
        if verdict.error is not None:
            if verdict.record:
                self._record_error(task, verdict.error, now)
            else:
                task.error = verdict.error
        for step in verdict.steps:
            if step.state is T.READY:
                task.ready_at = now
            self._task_to(task, step.state, step.detail, now)
        if verdict.retry_at is not None:
            assert self._loop is not None and verdict.retry_delay is not None
            task.next_attempt_at = verdict.retry_at
            task.timer = self._loop.call_later(verdict.retry_delay, self._retry_due, task)
        elif verdict.stop is not None:
            self._stop_run(task.run, verdict.stop)
        elif verdict.skip_dependents:
            self._skip_dependents_of([task], now)

    def _dispatch_if_live(self) -> None:
        if self._live:
            self._dispatch()

    @staticmethod
    def _record_error(task: LiveTask, message: str, now: float) -> None:
        task.error = message
        if task.errors is None:
            task.errors = []
        task.errors.append({"attempt": task.attempts, "error": message, "at": now})

    def _skip_dependents_of(self, ended: Iterable[LiveTask], now: float) -> None:
        """`ended` finished without success: skip their dependents, transitively, except
        `trigger: all_done` tasks, which only count the dependency as done."""
        stack = [d for t in ended for d in t.dependents]  # one entry per edge
        while stack:
            dep = stack.pop()
            if dep.state is not T.BLOCKED:
                continue
            if rules.dependency_ended(dep.spec.trigger, succeeded=False) == "count":
                dep.remaining -= 1
                if dep.remaining == 0:
                    self._deps_met(dep, now, now)
                continue
            self._cancel_timer(dep)
            self._task_to(dep, T.SKIPPED, SKIPPED_DETAIL, now)
            stack.extend(dep.dependents)

    # ------------------------------------------------------------------ run control

    def _stop_run(self, run: LiveRun, stop: rules.Stop) -> None:
        """Decide the run's outcome; cancel what has not started, cancel what is running."""
        if not rules.stop_applies(run.outcome, stop.outcome):
            return
        outcome, reason = stop.outcome, stop.reason
        run.outcome = outcome
        run.error = reason
        run.run_dirty = True
        now = time.time()
        for task in run.tasks.values():
            what = rules.stop(task.state, hook=task.hook, outcome=outcome)
            if what == "cancel":
                self._cancel_timer(task)
                self._task_to(task, T.CANCELLED, reason, now)
            elif what == "ask" and task.handle is not None and task.cancel_reason is None:
                self._cancel_attempt(task, reason)
        self._check_done(run)

    def _run_timed_out(self, run: LiveRun) -> None:
        run.timeout_handle = None
        if run.run_id in self._live:
            self._stop_run(run, rules.run_timed_out(run.spec.timeout or 0.0))

    def _pause(self, run: LiveRun) -> None:
        to = rules.pause(run.state)
        if to is not None:
            self._run_to(run, to)

    def _unpause(self, run: LiveRun) -> None:
        to = rules.resume(run.state)
        if to is not None:
            self._run_to(run, to, rules.RESUMED)
            self.queue.unpark_run(run.parked)
            self._dispatch()

    def _check_done(self, run: LiveRun) -> None:
        if run.done is None or run.done.done():
            return
        if run.outcome is RunState.RUNNING:  # interrupted by shutdown
            if not any(t.state is T.RUNNING for t in run.tasks.values()):
                self._finish(run, RunState.RUNNING)
            return
        if run.open > 0:
            return
        failed = (
            [t.name for t in run.tasks.values() if not t.hook and t.state is T.FAILED]
            if run.outcome is None
            else []
        )
        ending = rules.main_tasks_ended(
            run.outcome,
            run.error,
            failed,
            open_hooks=run.open_hooks,
            hooks_started=run.hooks_started,
        )
        run.outcome, run.error = ending.outcome, ending.error
        if ending.start_hooks:
            self._start_hooks(run)
        if ending.wait_hooks:
            return
        if ending.close_hooks is not None:
            now = time.time()
            for task in run.tasks.values():
                if task.hook and task.state is T.BLOCKED:
                    self._task_to(task, ending.close_hooks, rules.HOOKS_NOT_NEEDED, now)
            if run.open_hooks > 0:
                return
        self._finish(run, ending.outcome)

    def _start_hooks(self, run: LiveRun) -> None:
        run.hooks_started = True
        now = time.time()
        for task in run.tasks.values():
            if task.hook and task.state is T.BLOCKED:
                task.remaining = len(task.spec.needs)
                if task.remaining == 0:
                    self._deps_met(task, now, now)
        self._dispatch()

    def _finish(self, run: LiveRun, outcome: RunState) -> None:
        now = time.time()
        if run.timeout_handle is not None:
            run.timeout_handle.cancel()
            run.timeout_handle = None
        if outcome is not RunState.RUNNING:
            run.finished_at = now
            self._run_to(run, outcome, rules.final_detail(outcome, run.error), now)
        assert run.done is not None
        try:
            self._flush_run(run)
        except StoreError as exc:  # LeaseLost, or the database refused the write
            run.done.set_exception(run.fault or exc)
            return
        finally:
            self._live.pop(run.run_id, None)
        try:
            self.store.release_run(run.run_id, self.owner)
        except StoreError as exc:  # what matters is stored; the lease lapses by itself
            log.warning("store.release_failed", run_id=run.run_id, error=str(exc))
        if run.fault is not None:  # interrupted by a refused write, saved since
            run.done.set_exception(run.fault)
        else:
            run.done.set_result(outcome)

    # ------------------------------------------------------------------ broken runs

    def _guarded(self, task: LiveTask, step: Callable[..., None], *args: Any) -> None:
        """Take a step of `task`'s run; if the engine raises there, end the run failed (a
        callback's exception would otherwise be swallowed by the loop, the run left running
        with nothing to move it on)."""
        try:
            step(*args)
        except LeaseLost as exc:
            if task.run.run_id in self._live:
                self._abandon(task.run, exc)
        except StoreError as exc:  # the store failed, not the run: interrupt, resumable
            self._store_fault(task.run, exc)
        except Exception as exc:
            run = task.run
            if run.run_id in self._live:
                self._broken(run.run_id, run, exc, CANNOT_ADVANCE)
            else:
                log.error("engine.error", run_id=run.run_id, error=repr(exc), exc_info=exc)

    def _broken(self, run_id: str, run: LiveRun | None, exc: Exception, what: str) -> RunState:
        """Starting or advancing the run raised: stop what it runs here and end it `failed`
        with the error, so that `status` says why, instead of leaving it pending or running
        for every `resume` to meet the same exception again."""
        message = f"{what}: {type(exc).__name__}: {exc}"
        log.error("engine.run_failed", run_id=run_id, error=message, exc_info=exc)
        if run is not None:
            self._live.pop(run_id, None)
            run.halted = True
            for task in run.tasks.values():
                self._cancel_timer(task)
                if task.handle is not None and task.state is T.RUNNING:
                    self._cancel_attempt(task, message)
            if run.timeout_handle is not None:
                run.timeout_handle.cancel()
            with contextlib.suppress(StoreError):  # what was decided before, if it was
                self._flush_run(run)
        try:
            self._end_failed(run_id, message)
        except StoreError as exc2:  # left to the lease: the next process meets it again
            log.error("engine.run_failed_unrecorded", run_id=run_id, error=str(exc2))
            if run is not None and run.done is not None and not run.done.done():
                run.done.set_exception(exc2)
            raise
        if run is not None and run.done is not None and not run.done.done():
            run.done.set_result(RunState.FAILED)
        return RunState.FAILED

    def _end_failed(self, run_id: str, message: str) -> None:
        """Record the run `failed` with `message` from its stored rows: tasks not ended are
        cancelled (processes a dead owner left are stopped), then the run is released."""
        record = self.store.get_run(run_id)
        if record is None or RunState(record.state) in RUN_TERMINAL:
            return
        now = time.time()
        state = RunState(record.state)
        events: list[Any] = []
        if state is RunState.PENDING:
            events.append((run_id, None, state.value, RunState.RUNNING.value, None, now, None))
            state = RunState.RUNNING
        rows = []
        for t in self.store.get_tasks(run_id):
            if TaskState(t.state) in TASK_TERMINAL:
                continue
            if t.pid is not None and t.state == T.RUNNING:
                kill_orphans(t.pid, run_id, t.name)
            ended = replace(
                t,
                state=T.CANCELLED.value,
                finished_at=now,
                next_attempt_at=None,
                wait_reason=None,
                pid=None,
            )
            rows.append((*ended.row(), t.name))
            events.append((run_id, t.name, t.state, T.CANCELLED.value, t.attempts, now, message))
        events.append((run_id, None, state.value, RunState.FAILED.value, None, now, message))
        run = (RunState.FAILED.value, record.started_at or now, now, message)
        self.store.write(Batch(run_id, self.owner, now + self.lease_ttl, run, rows, events))
        self.store.release_run(run_id, self.owner)
        for rid, task, frm, to, attempt, _at, detail in events:
            if self.observer is None:
                break
            self._observe(rid, task, frm, to, attempt, detail)

    # ------------------------------------------------------------------ persistence

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and self._loop is not None:
            self._flush_handle = self._loop.call_later(self.flush_interval, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        for run in list(self._live.values()):
            if run.dirty or run.events or run.run_dirty:
                self._write(run)

    def _heartbeat(self) -> None:
        assert self._loop is not None
        self._heartbeat_handle = self._loop.call_later(self.heartbeat_interval, self._heartbeat)
        for run in list(self._live.values()):
            self._write(run)

    def _write(self, run: LiveRun) -> None:
        try:
            request = self._flush_run(run)
        except LeaseLost as exc:
            self._abandon(run, exc)
            return
        except StoreError as exc:
            self._store_fault(run, exc)
            return
        if request == "cancel":
            self._stop_run(run, rules.cancel_requested())
        elif request == "pause":
            self._pause(run)
        elif request == "resume":
            self._unpause(run)

    def _flush_run(self, run: LiveRun) -> str | None:
        """Write what changed; then, and only then, tell the observer: a transition whose
        write failed is never reported (a progress line "running -> succeeded" is a fact)."""
        batch = run.drain(self.owner, time.time() + self.lease_ttl)
        try:
            request = self.store.write(batch)
        except LeaseLost:
            raise
        except StoreError:
            run.undrain(batch)  # nothing was applied: the next flush writes it all again
            raise
        for rid, task, frm, to, attempt, _at, detail in batch.events:
            if self.observer is None:  # none, or one that failed and was dropped
                break
            self._observe(rid, task, frm, to, attempt, detail)
        return request

    def _store_fault(self, run: LiveRun, exc: StoreError) -> None:
        """The store refused to write the run (disk full, I/O error, database down): nothing
        more starts, running attempts are stopped and put back to `ready` as by `shutdown`,
        and `execute` raises `exc`. The run stays resumable from what was stored; what was
        not stored was never reported."""
        if run.fault is None:
            run.fault = exc
            log.info("store.write_failed", run_id=run.run_id, error=str(exc))
        if run.run_id in self._live:
            self._interrupt(run)

    def _abandon(self, run: LiveRun, exc: LeaseLost) -> None:
        """Another process owns the run now: stop its attempts here, record nothing more."""
        self._live.pop(run.run_id, None)
        run.halted = True  # its queued tasks must not start here any more
        for task in run.tasks.values():
            self._cancel_timer(task)
            if task.handle is not None:
                self._cancel_attempt(task, ABANDONED)
        if run.timeout_handle is not None:
            run.timeout_handle.cancel()
        if run.done is not None and not run.done.done():
            run.done.set_exception(exc)
