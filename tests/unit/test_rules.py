"""The rule book (`reviewflow.rules`), asked directly: pure functions of plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reviewflow import rules
from reviewflow.rules import Step, Stop, Verdict
from reviewflow.spec import RetryPolicy
from reviewflow.states import RunState, TaskState

T, R = TaskState, RunState
RETRY2 = RetryPolicy(max_retries=2, base_delay=1.0, multiplier=2.0, jitter=False)


def failed(**kw: Any) -> Verdict:
    args: dict[str, Any] = dict(
        retry=RETRY2,
        used=1,
        attempts=1,
        retryable=True,
        timed_out=False,
        stopping=False,
        hook=False,
        failure_policy="fail_fast",
        now=100.0,
        jitter=0.0,
    )
    args.update(kw)
    return rules.attempt_failed("t", "boom", **args)


# ------------------------------------------------------------------ failures and retries


def test_a_failure_with_retries_left_waits_for_the_backoff() -> None:
    v = failed(used=2, attempts=2)
    assert v.steps == (Step(T.RETRY_WAIT, "boom; attempt 3 in 2.000s"),)
    assert (v.retry_at, v.retry_delay) == (102.0, 2.0)
    assert (v.error, v.record, v.stop, v.skip_dependents) == ("boom", True, None, False)


def test_the_next_attempts_number_and_the_backoff_count_differently() -> None:
    """Workers do not count lost attempts against retries: the backoff follows `used`."""
    v = failed(used=1, attempts=3)
    assert v.steps[0].detail == "boom; attempt 4 in 1.000s"


def test_jitter_is_an_input() -> None:
    policy = RetryPolicy(max_retries=1, base_delay=4.0, jitter=True)
    assert failed(retry=policy, jitter=0.0).retry_delay == 2.0
    assert failed(retry=policy, jitter=1.0).retry_delay == 4.0


@pytest.mark.parametrize(
    "kw",
    [
        {"used": 3, "attempts": 3},  # retries used up
        {"retryable": False},
        {"stopping": True},  # the run's outcome is decided: nothing is retried
    ],
)
def test_no_retry_fails_the_task_and_fail_fast_stops_the_run(kw: dict[str, Any]) -> None:
    v = failed(**kw)
    assert v.state is T.FAILED and v.retry_at is None
    assert v.stop == Stop(R.FAILED, "task 't' failed: boom")
    assert not v.skip_dependents


def test_continue_skips_the_dependents_instead() -> None:
    v = failed(retryable=False, failure_policy="continue")
    assert v.stop is None and v.skip_dependents


def test_a_failing_hook_never_stops_the_run() -> None:
    v = failed(retryable=False, hook=True)
    assert v.stop is None and v.skip_dependents


def test_a_timeout_is_a_step_before_the_retry_or_the_failure() -> None:
    assert [s.state for s in failed(timed_out=True).steps] == [T.TIMED_OUT, T.RETRY_WAIT]
    assert [s.state for s in failed(timed_out=True, retryable=False).steps] == [
        T.TIMED_OUT,
        T.FAILED,
    ]


def test_retry_or_fail_of_a_recovered_timeout_records_nothing_new() -> None:
    v = rules.retry_or_fail(
        "t",
        "timed out",
        retry=RETRY2,
        used=1,
        attempts=1,
        retryable=True,
        stopping=False,
        hook=False,
        failure_policy="continue",
        now=0.0,
        jitter=0.5,
    )
    assert v.state is T.RETRY_WAIT and not v.record


@given(
    used=st.integers(1, 10),
    max_retries=st.integers(0, 10),
    retryable=st.booleans(),
    stopping=st.booleans(),
    jitter=st.floats(0, 1),
    now=st.floats(0, 1e9),
)
def test_retried_exactly_when_allowed(
    used: int, max_retries: int, retryable: bool, stopping: bool, jitter: float, now: float
) -> None:
    policy = RetryPolicy(max_retries=max_retries, base_delay=0.5, max_delay=10.0)
    v = failed(
        retry=policy, used=used, attempts=used, retryable=retryable, stopping=stopping, now=now
    )
    allowed = retryable and used <= max_retries and not stopping
    assert (v.state is T.RETRY_WAIT) == allowed
    if allowed:
        assert v.retry_delay is not None and v.retry_at == now + v.retry_delay
        assert 0 < v.retry_delay <= 10.0
    else:
        assert v.state is T.FAILED


# ------------------------------------------------------------------ cancelled, interrupted, lost


def test_a_run_timeout_fails_the_running_task() -> None:
    reason = rules.run_timeout_reason(2)
    assert reason == "run timeout: the run took longer than 2s"
    v = rules.attempt_cancelled(reason)
    assert v.steps == (Step(T.TIMED_OUT, reason), Step(T.FAILED, reason))
    assert v.error == reason and v.record
    assert v.stop is None and not v.skip_dependents  # the run is stopping already


def test_any_other_stop_cancels_the_task() -> None:
    v = rules.attempt_cancelled("cancelled by user")
    assert v.steps == (Step(T.CANCELLED, "cancelled by user"),) and v.error is None


def test_an_interrupted_attempt_does_not_count() -> None:
    v = rules.attempt_interrupted(
        "drained", cancel_reason=None, stopping=False, hook=False, run_error=None
    )
    assert v.steps == (Step(T.READY, "drained"),) and v.uncount


@pytest.mark.parametrize(
    ("cancel_reason", "stopping", "hook", "expected"),
    [
        ("task timeout?", False, False, "task timeout?"),
        (None, True, False, "the run's error"),
        (None, True, True, None),  # hooks of a stopping (failed) run go on
    ],
)
def test_an_interrupted_attempt_of_a_stopping_task_ends_cancelled(
    cancel_reason: str | None, stopping: bool, hook: bool, expected: str | None
) -> None:
    v = rules.attempt_interrupted(
        "drained",
        cancel_reason=cancel_reason,
        stopping=stopping,
        hook=hook,
        run_error="the run's error",
    )
    if expected is None:
        assert v.state is T.READY
    else:
        assert v.steps == (Step(T.CANCELLED, expected),) and not v.uncount


def lost(**kw: Any) -> Verdict:
    args: dict[str, Any] = dict(
        hook=False,
        cancel_reason=None,
        stopping=False,
        run_error=None,
        lost=1,
        max_lost=3,
        durable=False,
        failed_message=None,
        failure_policy="continue",
    )
    args.update(kw)
    return rules.attempt_lost("t", rules.embedded_lost_detail(1), **args)


def test_a_lost_attempt_is_tried_again() -> None:
    v = lost()
    assert v.steps == (Step(T.READY, "lost: the process running attempt 1 died"),)
    assert not v.uncount


def test_too_many_lost_attempts_fail_the_task() -> None:
    v = lost(lost=3)
    assert v.state is T.FAILED and v.error == "lost: the process running attempt 1 died"
    assert not v.record and v.skip_dependents
    message = rules.workers_lost_failed(3, 3)
    v = lost(lost=3, failed_message=message, failure_policy="fail_fast")
    assert v.steps == (Step(T.FAILED, message),) and v.record
    assert v.stop == Stop(R.FAILED, f"task 't' failed: {message}")


def test_a_durable_wait_is_never_failed_for_lost_attempts() -> None:
    assert lost(lost=30, durable=True).state is T.READY


def test_a_lost_attempt_of_a_stopping_run_is_cancelled() -> None:
    assert lost(stopping=True, run_error="why").steps == (Step(T.CANCELLED, "why"),)
    assert lost(cancel_reason="asked", stopping=True).steps == (Step(T.CANCELLED, "asked"),)
    assert lost(stopping=True, hook=True).state is T.READY


def test_lost_details() -> None:
    assert rules.workers_lost_detail(2, "w1") == "lost: the lease of attempt 2 (w1) expired"
    assert rules.workers_lost_detail(2, "w1", "gone") == "lost: gone"


# ------------------------------------------------------------------ dependencies


@pytest.mark.parametrize(
    ("trigger", "succeeded", "expected"),
    [
        ("all_succeeded", True, "count"),
        ("all_succeeded", False, "skip"),
        ("all_done", True, "count"),
        ("all_done", False, "count"),
    ],
)
def test_a_dependency_ending(trigger: str, succeeded: bool, expected: str) -> None:
    assert rules.dependency_ended(trigger, succeeded=succeeded) == expected


def test_remaining_read_back_from_stored_states() -> None:
    states = [T.SUCCEEDED, T.RUNNING, T.FAILED]
    assert rules.remaining("all_succeeded", states) == (2, True)
    assert rules.remaining("all_done", states) == (1, False)
    assert rules.remaining("all_succeeded", [T.SUCCEEDED, T.READY]) == (1, False)
    assert rules.remaining("all_done", [T.SKIPPED, T.CANCELLED]) == (0, False)


def test_due_time() -> None:
    kw: dict[str, Any] = dict(not_before=None, run_not_before=None, has_needs=True)
    assert rules.due_at(10.0, delay=0.0, **kw) == 0.0
    assert rules.due_at(10.0, delay=2.0, **kw) == 12.0
    assert rules.due_at(10.0, delay=2.0, not_before=50.0, run_not_before=None, has_needs=True) == 50
    # the run's not_before holds back root tasks only
    assert rules.due_at(10.0, delay=0.0, not_before=None, run_not_before=40.0, has_needs=True) == 0
    assert (
        rules.due_at(10.0, delay=0.0, not_before=None, run_not_before=40.0, has_needs=False) == 40
    )
    assert rules.ready_now(12.0, 12.0) and rules.ready_now(12.0004, 12.0)
    assert not rules.ready_now(12.001, 12.0)
    assert rules.delayed_reason(0.0).startswith("delayed until ")


def test_absolute_not_before() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert rules.absolute(when, 5.0) == when.timestamp()
    assert rules.absolute(3.0, 5.0) == 8.0


# ------------------------------------------------------------------ the run


@pytest.mark.parametrize(
    ("current", "new", "applies"),
    [
        (None, R.FAILED, True),
        (None, R.CANCELLED, True),
        (R.FAILED, R.CANCELLED, True),  # a cancel also stops the hooks of a failed run
        (R.FAILED, R.FAILED, False),
        (R.CANCELLED, R.FAILED, False),
        (R.CANCELLED, R.CANCELLED, False),
        (R.SUCCEEDED, R.CANCELLED, False),
    ],
)
def test_the_first_stop_decides(current: RunState | None, new: RunState, applies: bool) -> None:
    assert rules.stop_applies(current, new) is applies


@pytest.mark.parametrize("state", list(T))
@pytest.mark.parametrize("hook", [False, True])
@pytest.mark.parametrize("outcome", [R.FAILED, R.CANCELLED])
def test_what_a_stop_does_to_each_task(state: TaskState, hook: bool, outcome: RunState) -> None:
    what = rules.stop(state, hook=hook, outcome=outcome)
    if hook and outcome is R.FAILED:
        assert what is None
    elif state in (T.BLOCKED, T.READY, T.RETRY_WAIT):
        assert what == "cancel"
    elif state is T.RUNNING:
        assert what == "ask"
    else:
        assert what is None


def test_cancel_and_run_timeout() -> None:
    assert rules.cancel_requested() == Stop(R.CANCELLED, "cancelled by user")
    assert rules.run_timed_out(1.5) == Stop(R.FAILED, "run timeout: the run took longer than 1.5s")


def test_pause_and_resume() -> None:
    assert rules.pause(R.RUNNING) is R.PAUSED
    assert rules.pause(R.PAUSED) is None and rules.pause(R.PENDING) is None
    assert rules.resume(R.PAUSED) is R.RUNNING
    assert rules.resume(R.RUNNING) is None


@pytest.mark.parametrize(
    ("policy", "states", "error", "expected"),
    [
        ("fail_fast", [T.SUCCEEDED, T.READY], None, None),
        ("fail_fast", [T.FAILED, T.READY], None, Stop(R.FAILED, "a task failed")),
        ("fail_fast", [T.FAILED], "task 'a' failed: x", Stop(R.FAILED, "task 'a' failed: x")),
        ("continue", [T.FAILED, T.READY], None, None),
        ("continue", [T.CANCELLED], None, Stop(R.CANCELLED, "cancelled")),
        ("continue", [T.CANCELLED], "run timeout: 1s", Stop(R.FAILED, "run timeout: 1s")),
    ],
)
def test_a_recovered_run_resumes_its_stop(
    policy: str, states: list[TaskState], error: str | None, expected: Stop | None
) -> None:
    assert rules.recovered(policy, states, error) == expected


def test_outcome_without_hooks() -> None:
    e = rules.main_tasks_ended(None, None, [], open_hooks=0, hooks_started=False)
    assert (e.outcome, e.error, e.start_hooks, e.close_hooks) == (R.SUCCEEDED, None, False, None)
    e = rules.main_tasks_ended(None, None, ["a", "b"], open_hooks=0, hooks_started=False)
    assert (e.outcome, e.error) == (R.FAILED, "failed tasks: a, b")
    e = rules.main_tasks_ended(R.CANCELLED, "why", ["a"], open_hooks=0, hooks_started=False)
    assert (e.outcome, e.error) == (R.CANCELLED, "why")


def test_a_failed_run_starts_its_hooks_once_and_waits_for_them() -> None:
    e = rules.main_tasks_ended(None, None, ["a"], open_hooks=2, hooks_started=False)
    assert e.start_hooks and e.wait_hooks
    e = rules.main_tasks_ended(R.FAILED, "x", [], open_hooks=1, hooks_started=True)
    assert not e.start_hooks and e.wait_hooks


@pytest.mark.parametrize(
    ("outcome", "failed", "close"),
    [(None, [], T.SKIPPED), (R.CANCELLED, [], T.CANCELLED)],
)
def test_hooks_not_needed_are_closed(
    outcome: RunState | None, failed: list[str], close: TaskState
) -> None:
    e = rules.main_tasks_ended(outcome, None, failed, open_hooks=2, hooks_started=False)
    assert e.close_hooks is close and not e.start_hooks and not e.wait_hooks


def test_final_detail() -> None:
    assert rules.final_detail(R.SUCCEEDED, "x") is None
    assert rules.final_detail(R.FAILED, "x") == "x"


def test_the_workers_stop_queries_cancel_the_states_the_rules_name() -> None:
    """The workers cancel a stopping run's tasks in one statement (no row read): its states
    are the rule book's."""
    import re

    from reviewflow.store.sql import query

    for q in ("open_tasks", "cancel_tasks"):
        found = re.search(r"state IN \(([^)]*)\)", query(q))
        assert found is not None, q
        states = {T(s.strip().strip("'")) for s in found[1].split(",")}
        assert states == rules.STOP_CANCELS, q
