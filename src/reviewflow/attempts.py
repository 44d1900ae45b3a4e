"""Attempt execution: one attempt of one task, as the embedded engine and a worker run it.

What is the same in both — the task's type, the timeout the caller enforces, what the end of the
attempt's coroutine means (`ended`) — is written here once. `AttemptExecution` is the embedded
engine's half that starts, times, cancels and ends attempts (the `Engine` class holds the run
coordination: claims, recovery, dispatch, what an ended attempt does to the run through the rule
book, flushes). A worker (`cluster/worker.py`) runs its attempts with the same functions and
reports each end to the cluster, which applies the same rule book to database rows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from .constants import ATTEMPT_TIMEOUT
from .errors import StoreError, TaskFailed
from .executors import TaskContext, registry
from .executors.base import TaskType
from .executors.shell import kill_orphans
from .rules import INTERRUPTED
from .runtime import LiveRun, LiveTask
from .spec import TaskSpec
from .states import TaskState

if TYPE_CHECKING:
    from .scheduler import ReadyQueue
    from .store import Store

T = TaskState
NO_FAILURES: Mapping[str, str] = MappingProxyType({})


def task_type_of(spec: TaskSpec) -> TaskType:
    """The task's type. A plugin missing or broken in this process fails the attempt for good
    (not retryable: the same process would meet it again) instead of hanging the task."""
    try:
        return registry.get(spec.type)
    except Exception as exc:
        raise TaskFailed(f"task type {spec.type!r} unavailable: {exc}", retryable=False) from exc


def own_timeout(task_type: TaskType, spec: TaskSpec) -> float | None:
    """Seconds after which the caller cancels the attempt; None when there is no limit or the
    task type enforces the timeout itself (an approval bounds its wait for a person)."""
    if spec.timeout and not getattr(task_type, "owns_timeout", False):
        return float(spec.timeout)
    return None


@dataclass(slots=True)
class Ended:
    """How an attempt's coroutine ended, cancellation aside: `succeeded` with its result,
    `failed` with the error and whether a retry may help, or `store`: the store failed under
    the attempt (an approval reads and writes it) — not the task's failure, the attempt goes back
    uncounted and the run is interrupted (engine) or the task handed back (worker)."""

    kind: Literal["succeeded", "failed", "store"]
    result: Any = None
    error: str | None = None
    retryable: bool = True


def ended(exc: BaseException | None, result: Any = None) -> Ended:
    """Classify the end of an attempt: `exc` raised by the task type, or its `result`."""
    if exc is None:
        return Ended("succeeded", result)
    if isinstance(exc, TaskFailed):
        return Ended("failed", error=str(exc), retryable=exc.retryable)
    if isinstance(exc, StoreError):
        return Ended("store", error=f"the store failed: {exc}")
    return Ended("failed", error=f"{type(exc).__name__}: {exc}")


class AttemptExecution:
    """The embedded engine's attempts: start, time out, cancel, run, end. Mixed into `Engine`,
    which gives the run-coordination methods declared below."""

    if TYPE_CHECKING:
        store: Store
        queue: ReadyQueue
        _loop: asyncio.AbstractEventLoop | None
        _live: dict[str, LiveRun]

        def _task_to(
            self,
            task: LiveTask,
            to: TaskState,
            detail: str | None = None,
            now: float | None = None,
        ) -> None: ...
        def _mark(self, task: LiveTask) -> None: ...
        def _schedule_flush(self) -> None: ...
        def _dispatch_if_live(self) -> None: ...
        def _succeeded(self, task: LiveTask, result: Any) -> None: ...
        def _settle(
            self,
            task: LiveTask,
            message: str | None,
            retryable: bool,
            *,
            timed_out: bool = False,
            cancelled: bool = False,
        ) -> None: ...
        def _guarded(self, task: LiveTask, step: Callable[..., None], *args: Any) -> None: ...
        def _store_fault(self, run: LiveRun, exc: StoreError) -> None: ...

    @staticmethod
    def _kill_orphans(task: LiveTask) -> None:
        """Stop what a dead owner's attempt left running (same host only)."""
        if task.pid is not None:
            kill_orphans(task.pid, task.run.run_id, task.name)
            task.pid = None

    def _start(self, task: LiveTask, loop: asyncio.AbstractEventLoop) -> None:
        """Start an attempt of a claimed task."""
        task.attempts += 1
        now = time.time()
        task.started_at = now
        task.cancel_reason = None
        task.entered = False
        self._task_to(task, T.RUNNING, None, now)
        task.handle = loop.create_task(self._attempt(task))

    def _attempt_timed_out(self, task: LiveTask) -> None:
        """The attempt's timeout expired: cancel it (its task type stops its processes)."""
        task.timer = None
        if task.state is T.RUNNING and task.handle is not None and task.cancel_reason is None:
            self._cancel_attempt(task, ATTEMPT_TIMEOUT)

    def _cancel_attempt(self, task: LiveTask, reason: str) -> None:
        """Stop a running attempt for `reason`.

        An attempt whose coroutine has not taken its first step must not be cancelled: it would
        never run, so never settle (its slot and the run's count would leak). It finds the
        reason when it starts instead.
        """
        task.cancel_reason = reason
        if task.entered and task.handle is not None:
            task.handle.cancel()

    async def _attempt(self, task: LiveTask) -> None:
        task.entered = True
        # A local, not the attribute: `cancel_reason` is set by others while this coroutine awaits
        # (type checkers would keep the attribute narrowed to None past the await below).
        reason = task.cancel_reason
        if reason is not None:  # stopped before it could start
            self._settle(task, reason, False, cancelled=True)
            return
        spec = task.spec
        try:
            task_type = task_type_of(spec)
        except TaskFailed as exc:
            self._settle(task, str(exc), exc.retryable)
            return
        timeout = own_timeout(task_type, spec)
        if timeout is not None:
            # Armed here rather than in the dispatch loop, so that starting N siblings does
            # not pay N timer insertions before the last of them is marked running.
            assert self._loop is not None
            task.timer = self._loop.call_later(timeout, self._attempt_timed_out, task)
        run = task.run
        tasks = run.tasks
        ctx = TaskContext(
            run.run_id,
            task.name,
            task.attempts,
            spec.params,
            {d: tasks[d].result for d in spec.needs},
            run.meta,
            run.run_dir,
            spec,
            partial(self._set_pid, task),
            NO_FAILURES
            if spec.trigger == "all_succeeded"
            else {
                d: tasks[d].error or tasks[d].state.value
                for d in spec.needs
                if tasks[d].state is not T.SUCCEEDED
            },
            self.store,
            partial(self._note, task),
            partial(self._waiting, task),
            partial(self._run_view, run),
        )
        try:
            result = await task_type.execute(ctx)
        except asyncio.CancelledError:
            reason = task.cancel_reason
            if reason is None:
                self._settle(task, None, False, cancelled=True)
                raise
            if reason is ATTEMPT_TIMEOUT:
                task.cancel_reason = None
                self._settle(task, f"timed out after {spec.timeout:g}s", True, timed_out=True)
            else:
                self._settle(task, reason, False, cancelled=True)
        except Exception as exc:
            self._raised(task, exc)
        else:  # the hot path: no Ended built for a success
            self._guarded(task, self._succeeded, task, result)

    def _raised(self, task: LiveTask, exc: Exception) -> None:
        """The attempt raised `exc`: a failure of the task, or a fault of the store."""
        end = ended(exc)
        if end.kind == "store":
            # A fault of the store, not of the task: the run is interrupted and this attempt
            # goes back to `ready` uncounted, as the others do.
            assert isinstance(exc, StoreError)
            task.cancel_reason = INTERRUPTED
            self._store_fault(task.run, exc)
            self._guarded(task, partial(self._settle, cancelled=True), task, INTERRUPTED, False)
        else:
            self._guarded(task, self._settle, task, end.error, end.retryable)

    def _note(self, task: LiveTask, detail: str) -> None:
        """An informational event: the task stays in its state, the history gains a line."""
        if task.run.run_id not in self._live:
            return
        run, state = task.run, task.state._value_
        now = time.time()
        run.events.append((run.run_id, task.name, state, state, task.attempts, now, detail))
        self._schedule_flush()

    def _waiting(self, task: LiveTask, reason: str | None) -> None:
        """The attempt waits on something outside (a person): it gives back its concurrency
        slots, so a waiting approval never holds up compute tasks."""
        task.wait_reason = reason
        task.run.dirty[task] = None
        if reason is not None and not task.detached and task.state is T.RUNNING:
            task.detached = True
            self.queue.release(task)
            self._dispatch_if_live()
        self._schedule_flush()

    @staticmethod
    def _run_view(run: LiveRun) -> dict[str, dict[str, Any]]:
        return {
            t.name: {
                "state": t.state._value_,
                "attempts": t.attempts,
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "error": t.error,
                "needs": list(t.spec.needs),
                "type": t.spec.type,
                "hook": t.hook,
            }
            for t in run.tasks.values()
        }

    def _set_pid(self, task: LiveTask, pid: int) -> None:
        task.pid = pid
        self._mark(task)

    def _end_attempt(self, task: LiveTask) -> None:
        """The attempt's coroutine is done: free its slots, forget its process and timer."""
        if task.detached:
            task.detached = False
        else:
            self.queue.release(task)
        task.handle = None
        task.pid = None
        self._cancel_timer(task)

    @staticmethod
    def _cancel_timer(task: LiveTask) -> None:
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
