"""What the end of an attempt means, the same for the embedded engine and a worker."""

from __future__ import annotations

import pytest

from reviewflow.attempts import Ended, ended, own_timeout, task_type_of
from reviewflow.errors import StoreError, TaskFailed
from reviewflow.executors import registry
from reviewflow.spec import TaskSpec


def test_a_result_is_a_success_and_keeps_the_result() -> None:
    assert ended(None, {"ok": 1}) == Ended("succeeded", {"ok": 1})


def test_a_task_failure_keeps_its_message_and_whether_a_retry_may_help() -> None:
    assert ended(TaskFailed("exit code 2", retryable=False)) == Ended(
        "failed", error="exit code 2", retryable=False
    )


def test_a_store_error_is_the_stores_fault_not_the_tasks() -> None:
    end = ended(StoreError("disk I/O error"))
    assert (end.kind, end.error) == ("store", "the store failed: disk I/O error")


def test_any_other_exception_is_a_retryable_failure_named_by_its_type() -> None:
    assert ended(ValueError("bad")) == Ended("failed", error="ValueError: bad", retryable=True)


def test_an_unknown_task_type_fails_the_attempt_for_good() -> None:
    spec = TaskSpec(name="t", type="no-such-type", run=["true"])
    with pytest.raises(TaskFailed) as caught:
        task_type_of(spec)
    assert not caught.value.retryable
    assert str(caught.value).startswith("task type 'no-such-type' unavailable")


def test_the_caller_times_an_attempt_unless_its_type_owns_the_timeout() -> None:
    shell = TaskSpec(name="s", type="shell", run=["true"], timeout=5)
    assert own_timeout(registry.get("shell"), shell) == 5.0
    assert own_timeout(registry.get("shell"), shell.model_copy(update={"timeout": None})) is None
    gate = TaskSpec(name="a", type="approval", timeout=60)
    assert own_timeout(registry.get("approval"), gate) is None  # it bounds its own wait
