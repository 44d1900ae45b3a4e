"""The rule book: what an event means for a run, decided once, with no I/O.

Two modes execute runs: the embedded engine (`engine.py`) holds a run in memory, the workers
(`cluster/dag.py`) hold it in database rows. Both ask this module what an event means — an
attempt succeeded, failed, timed out, was cancelled, interrupted or lost; the run is stopped
(cancel, run timeout, `fail_fast`), paused or resumed; its main tasks all ended — and apply the
answer to their own state: the engine to its objects, the workers to rows inside the
transaction that records the event. Neither decides anything itself, so a rule written here holds
in both modes at once.

Everything here is a pure function of plain values: no store, no clock, no randomness (the
current time and the retry jitter are arguments), no asyncio. The answers are small frozen
values (`Verdict`, `Stop`, `Ending`) or plain states and numbers.

The rules, in one place:

- An attempt that fails (or times out) is retried after the retry policy's backoff while retries
  are left, the error is retryable and the run is not stopping; otherwise the task fails for good.
- A task failing for good: under `fail_fast` (the default) a main task stops the run `failed`;
  otherwise (or for an `on_failure` task) its dependents are skipped, transitively, except
  `trigger: all_done` tasks, which count the dependency as done.
- Stopping a run decides its outcome once (a cancel may still override a `failed` outcome);
  tasks not started are cancelled and running attempts are asked to stop; `on_failure` tasks
  are cancelled only when the run is cancelled.
- An attempt stopped by a run timeout fails its task (timed out); one stopped otherwise is
  cancelled; one interrupted (a process or worker shutting down) does not count and goes back
  to ready.
- A lost attempt (its process died, its lease expired) goes back to ready, unless the run is
  stopping (cancelled) or the task lost too many attempts (failed; never for a durable wait).
- Once every main task ended, the run's outcome is `failed` if one failed, else `succeeded`
  (unless stopping decided it); a failed run starts its `on_failure` tasks and ends when they
  end, otherwise they are skipped (succeeded) or cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

from .spec import RetryPolicy
from .states import RunState, TaskState

T = TaskState
R = RunState

RUN_TIMEOUT = "run timeout"
INTERRUPTED = "interrupted"
LOST = "lost"
SKIPPED_DETAIL = "a dependency did not succeed"
HOOKS_NOT_NEEDED = "on_failure not needed"
CANCELLED_BY_USER = "cancelled by user"
RESUMED = "resumed"
DUE_SLACK = 0.0005
"""A task due within this many seconds is ready now (timers are not finer than that)."""

STOP_CANCELS: frozenset[TaskState] = frozenset({T.BLOCKED, T.READY, T.RETRY_WAIT})
"""States a stopping run cancels at once (running attempts are asked to stop instead)."""


# ----------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class Step:
    """One transition of a task: to `state`, with `detail` in its history."""

    state: TaskState
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """The run stops with `outcome` for `reason` (see `stop`)."""

    outcome: RunState
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the end of an attempt means for its task, in the order to apply it:

    1. `uncount`: the attempt is given back (`attempts - 1`);
    2. `error`: becomes the task's error; with `record`, also an entry of its errors list
       (`{"attempt", "error", "at"}`);
    3. `steps`: the transitions, in order;
    4. `retry_at` / `retry_delay`: the task waits in `retry_wait` until then;
    5. the task failed for good (`steps` end in `failed`): `stop` the run if set, else the
       dependents are settled as `dependency_ended(succeeded=False)` says (`skip_dependents`).
    """

    steps: tuple[Step, ...]
    error: str | None = None
    record: bool = False
    uncount: bool = False
    retry_at: float | None = None
    retry_delay: float | None = None
    stop: Stop | None = None
    skip_dependents: bool = False

    @property
    def state(self) -> TaskState:
        """The task's state after the verdict."""
        return self.steps[-1].state


@dataclass(frozen=True, slots=True)
class Ending:
    """The run once its main tasks all ended (see `main_tasks_ended`)."""

    outcome: RunState
    error: str | None
    start_hooks: bool = False
    """Start the `on_failure` tasks now (the run ends when they end)."""
    close_hooks: TaskState | None = None
    """`on_failure` tasks still blocked end in this state (detail `HOOKS_NOT_NEEDED`)."""
    wait_hooks: bool = False
    """`on_failure` tasks are running: the run ends when they end."""


# ----------------------------------------------------------------------------- messages


def fail_fast_reason(task: str, error: str | None) -> str:
    return f"task {task!r} failed: {error}"


def run_timeout_reason(timeout: float) -> str:
    return f"{RUN_TIMEOUT}: the run took longer than {timeout:g}s"


def retry_detail(message: str, next_attempt: int, delay: float) -> str:
    return f"{message}; attempt {next_attempt} in {delay:.3f}s"


def delayed_reason(due: float) -> str:
    return f"delayed until {datetime.fromtimestamp(due):%H:%M:%S.%f}"[:-3]


def failed_tasks_reason(names: Sequence[str]) -> str:
    return f"failed tasks: {', '.join(names)}"


# ----------------------------------------------------------------------------- attempts


def task_failed(task: str, error: str | None, *, hook: bool, failure_policy: str) -> Stop | None:
    """A task failed for good: the run stops (`fail_fast`, main tasks), or None: its
    dependents are settled instead (skipped, or counted by `all_done` tasks)."""
    if not hook and failure_policy == "fail_fast":
        return Stop(R.FAILED, fail_fast_reason(task, error))
    return None


def _failed(task: str, message: str, hook: bool, failure_policy: str, *pre: Step) -> Verdict:
    stop = task_failed(task, message, hook=hook, failure_policy=failure_policy)
    return Verdict(
        (*pre, Step(T.FAILED, message)),
        error=message,
        stop=stop,
        skip_dependents=stop is None,
    )


def retry_or_fail(
    task: str,
    message: str,
    *,
    retry: RetryPolicy,
    used: int,
    attempts: int,
    retryable: bool,
    stopping: bool,
    hook: bool,
    failure_policy: str,
    now: float,
    jitter: float,
) -> Verdict:
    """A failed (or timed out) attempt: retried after backoff, or the task fails for good.

    `used`: the attempts counted against `retry.max_retries` (the workers do not count lost
    ones); `attempts`: the attempt that failed (the next one is `attempts + 1`); `stopping`:
    the run's outcome is decided (nothing is retried then); `jitter` in [0, 1)."""
    if retryable and used <= retry.max_retries and not stopping:
        delay = retry.delay(used, jitter)
        return Verdict(
            (Step(T.RETRY_WAIT, retry_detail(message, attempts + 1, delay)),),
            error=message,
            retry_at=now + delay,
            retry_delay=delay,
        )
    return _failed(task, message, hook, failure_policy)


def attempt_failed(
    task: str,
    message: str,
    *,
    retry: RetryPolicy,
    used: int,
    attempts: int,
    retryable: bool,
    timed_out: bool,
    stopping: bool,
    hook: bool,
    failure_policy: str,
    now: float,
    jitter: float,
) -> Verdict:
    """An attempt failed (raised, exited non-zero) or, with `timed_out`, ran past its
    timeout: the error is recorded, then `retry_or_fail`."""
    then = retry_or_fail(
        task,
        message,
        retry=retry,
        used=used,
        attempts=attempts,
        retryable=retryable,
        stopping=stopping,
        hook=hook,
        failure_policy=failure_policy,
        now=now,
        jitter=jitter,
    )
    pre = (Step(T.TIMED_OUT, message),) if timed_out else ()
    return Verdict(
        (*pre, *then.steps),
        error=message,
        record=True,
        retry_at=then.retry_at,
        retry_delay=then.retry_delay,
        stop=then.stop,
        skip_dependents=then.skip_dependents,
    )


@lru_cache(maxsize=256)
def attempt_cancelled(reason: str) -> Verdict:
    """A running attempt was stopped for `reason`: a run timeout fails the task (timed out,
    the reason recorded as its error); any other reason cancels it. (Cached: a stopping run
    asks it once per running attempt, always with the same reason.)"""
    if reason.startswith(RUN_TIMEOUT):
        return Verdict(
            (Step(T.TIMED_OUT, reason), Step(T.FAILED, reason)), error=reason, record=True
        )
    return Verdict((Step(T.CANCELLED, reason),))


def attempt_interrupted(
    detail: str, *, cancel_reason: str | None, stopping: bool, hook: bool, run_error: str | None
) -> Verdict:
    """The attempt was handed back by a process or worker shutting down: it does not count
    and the task is ready again — unless the task (`cancel_reason`) or, for a main task, the
    run (`stopping`) was being stopped: then it ends as `attempt_cancelled` says."""
    if cancel_reason or (stopping and not hook):
        return attempt_cancelled(cancel_reason or run_error or "cancelled")
    return Verdict((Step(T.READY, detail),), uncount=True)


def attempt_lost(
    task: str,
    detail: str,
    *,
    hook: bool,
    cancel_reason: str | None,
    stopping: bool,
    run_error: str | None,
    lost: int,
    max_lost: int,
    durable: bool,
    failed_message: str | None,
    failure_policy: str,
) -> Verdict:
    """The attempt is lost: the process running it died, or its lease expired.

    The task is cancelled if it (`cancel_reason`) or, for a main task, the run was being
    stopped; it fails once `lost` reaches `max_lost` (never a durable wait: an approval waits
    for a person, not for a process), with `failed_message` recorded as its error (None: the
    embedded engine, whose message is `detail` and not an entry of the errors list); else it
    is ready again, with `detail` in its history."""
    if cancel_reason or (stopping and not hook):
        return Verdict((Step(T.CANCELLED, cancel_reason or run_error),))
    if lost >= max_lost and not durable:
        message = failed_message if failed_message is not None else detail
        verdict = _failed(task, message, hook, failure_policy)
        if failed_message is None:
            return verdict
        return Verdict(
            verdict.steps,
            error=message,
            record=True,
            stop=verdict.stop,
            skip_dependents=verdict.skip_dependents,
        )
    return Verdict((Step(T.READY, detail),))


def embedded_lost_detail(attempt: int) -> str:
    return f"{LOST}: the process running attempt {attempt} died"


def workers_lost_detail(attempt: int, owner: str | None, why: str | None = None) -> str:
    return f"{LOST}: " + (why or f"the lease of attempt {attempt} ({owner}) expired")


def workers_lost_failed(lost: int, max_lost: int) -> str:
    return f"{LOST}: {lost} attempts lost (max_lost_attempts {max_lost})"


# ----------------------------------------------------------------------------- dependencies


def skips(trigger: str) -> bool:
    """Whether a dependency that ended without success skips the task (`all_succeeded`), or
    only counts as done (`all_done`)."""
    return trigger != "all_done"


def dependency_ended(trigger: str, *, succeeded: bool) -> Literal["count", "skip"]:
    """A dependency of a blocked task ended: count it off (the task is ready when none is
    left), or skip the task (and, through the same rule, its own dependents)."""
    return "count" if succeeded or not skips(trigger) else "skip"


def remaining(trigger: str, dependencies: Iterable[TaskState]) -> tuple[int, bool]:
    """A blocked task's dependencies, read back from the store: (how many are still to
    count, whether the task is to be skipped already)."""
    left = 0
    if not skips(trigger):
        for state in dependencies:
            if state not in _ENDED:
                left += 1
        return left, False
    skip = False
    for state in dependencies:
        if state is not T.SUCCEEDED:
            left += 1
            if state in _ENDED:
                skip = True
    return left, skip


_ENDED = frozenset({T.SUCCEEDED, T.FAILED, T.CANCELLED, T.SKIPPED})


def absolute(when: datetime | float, base: float) -> float:
    """A `not_before`: a datetime, or seconds after `base` (the run's creation)."""
    return when.timestamp() if isinstance(when, datetime) else base + when


def due_at(
    since: float,
    *,
    delay: float,
    not_before: float | None,
    run_not_before: float | None,
    has_needs: bool,
) -> float:
    """When a task whose dependencies were met at `since` may start (0.0: at once): after
    its `delay`, not before its `not_before`, and, for a root task, the run's `not_before`
    (absolute times)."""
    due = since + delay if delay else 0.0
    if not_before is not None:
        due = max(due, not_before)
    if run_not_before is not None and not has_needs:
        due = max(due, run_not_before)
    return due


def ready_now(due: float, now: float) -> bool:
    return due <= now + DUE_SLACK


# ----------------------------------------------------------------------------- the run


def stop_applies(current: RunState | None, outcome: RunState) -> bool:
    """Whether stopping with `outcome` decides the run: its outcome is not decided yet, or
    a cancel overrides `failed` (hooks running after a failure are cancelled too)."""
    return current is None or (outcome is R.CANCELLED and current is R.FAILED)


def stop_includes_hooks(outcome: RunState) -> bool:
    """Stopping cancels the `on_failure` tasks too only when the run is cancelled."""
    return outcome is R.CANCELLED


def stop(state: TaskState, *, hook: bool, outcome: RunState) -> Literal["cancel", "ask", None]:
    """What stopping the run with `outcome` does to a task: cancel it now, ask its running
    attempt to stop (it ends as `attempt_cancelled` says), or nothing."""
    if hook and not stop_includes_hooks(outcome):
        return None
    if state in STOP_CANCELS:
        return "cancel"
    if state is T.RUNNING:
        return "ask"
    return None


def cancel_requested() -> Stop:
    return Stop(R.CANCELLED, CANCELLED_BY_USER)


def run_timed_out(timeout: float) -> Stop:
    return Stop(R.FAILED, run_timeout_reason(timeout))


def pause(state: RunState) -> RunState | None:
    """A pause: the run's new state, or None (only a running run pauses)."""
    return R.PAUSED if state is R.RUNNING else None


def resume(state: RunState) -> RunState | None:
    """A resume: the run's new state (detail `RESUMED`), or None (only a paused run)."""
    return R.RUNNING if state is R.PAUSED else None


def recovered(failure_policy: str, main: Iterable[TaskState], run_error: str | None) -> Stop | None:
    """A run taken over from a process that died: the stop it was in, read from its main
    tasks (only a stop cancels main tasks; a failed one stops a `fail_fast` run), or None."""
    states = set(main)
    if failure_policy == "fail_fast" and T.FAILED in states:
        return Stop(R.FAILED, run_error or "a task failed")
    if T.CANCELLED in states:
        err = run_error or "cancelled"
        return Stop(R.FAILED if err.startswith(RUN_TIMEOUT) else R.CANCELLED, err)
    return None


def main_tasks_ended(
    outcome: RunState | None,
    error: str | None,
    failed: Sequence[str],
    *,
    open_hooks: int,
    hooks_started: bool,
) -> Ending:
    """Every main task ended. `outcome`/`error`: decided by a stop, if one was; `failed`:
    the main tasks that failed (read only when no stop decided); `open_hooks`: `on_failure`
    tasks not ended."""
    if outcome is None:
        outcome = R.FAILED if failed else R.SUCCEEDED
        if failed:
            error = failed_tasks_reason(failed)
    if open_hooks > 0:
        if outcome is R.FAILED:
            return Ending(outcome, error, start_hooks=not hooks_started, wait_hooks=True)
        close = T.SKIPPED if outcome is R.SUCCEEDED else T.CANCELLED
        return Ending(outcome, error, close_hooks=close)
    return Ending(outcome, error)


def final_detail(outcome: RunState, error: str | None) -> str | None:
    """The detail of the run's last event: its error, unless it succeeded."""
    return None if outcome is R.SUCCEEDED else error
