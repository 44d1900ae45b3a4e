"""fail_fast and continue failure policies, and on_failure hooks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reviewflow.states import RunState
from rfhelpers import arun, process_gone, py, sh, task_events, tasks_by_name, workflow

NO_RETRY = {"max_retries": 0}


def _wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not process_gone(pid):
        time.sleep(0.05)
    return process_gone(pid)


def test_fail_fast_cancels_waiting_and_running_tasks(store, make_engine, tmp_path: Path) -> None:
    spec = workflow(
        {
            "bad": py("fail", params={"seconds": 0.2}, retry=NO_RETRY),
            "long": sh("echo $$ > long.pid; exec sleep 30", cwd=str(tmp_path), kill_grace="1s"),
            "after_long": py("anoop", needs=["long"]),
            "after_bad": py("anoop", needs=["bad"]),
            "delayed": py("anoop", delay="10s"),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED

    rows = tasks_by_name(store, run_id)
    assert {n: r.state for n, r in rows.items()} == {
        "bad": "failed",
        "long": "cancelled",
        "after_long": "cancelled",
        "after_bad": "cancelled",
        "delayed": "cancelled",
    }
    run = store.get_run(run_id)
    assert run.error.startswith("task 'bad' failed: RuntimeError: bad failed on purpose")
    # the running task was stopped (not waited for): its process is gone and the run ended
    # long before its 30 s sleep would have
    assert [(e.from_state, e.to_state) for e in task_events(store, run_id, "long")][-1] == (
        "running",
        "cancelled",
    )
    assert "task 'bad' failed" in task_events(store, run_id, "long")[-1].detail
    assert _wait_gone(int((tmp_path / "long.pid").read_text()))
    assert run.finished_at - run.started_at < 10
    # nothing started after the failure
    bad_failed = next(e.id for e in task_events(store, run_id, "bad") if e.to_state == "failed")
    assert not [
        e
        for e in store.get_events(run_id)
        if e.task and e.to_state == "running" and e.id > bad_failed
    ]


def test_continue_skips_dependents_and_finishes_independent_branches(
    store, make_engine, tmp_path: Path
) -> None:
    spec = workflow(
        {
            "bad": py("fail", retry=NO_RETRY),
            "child": py("anoop", needs=["bad"]),
            "grandchild": py("anoop", needs=["child"]),
            "x": py("asleep", params={"seconds": 0.2}),
            "y": py("anoop", needs=["x"]),
            "join": py("anoop", needs=["x", "bad"]),
        },
        failure_policy="continue",
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED

    rows = tasks_by_name(store, run_id)
    assert {n: r.state for n, r in rows.items()} == {
        "bad": "failed",
        "child": "skipped",
        "grandchild": "skipped",
        "x": "succeeded",
        "y": "succeeded",
        "join": "skipped",
    }
    assert store.get_run(run_id).error == "failed tasks: bad"
    # the independent branch really ran after the failure
    evs = store.get_events(run_id)
    bad_failed = next(e.id for e in evs if e.task == "bad" and e.to_state == "failed")
    y_started = next(e.id for e in evs if e.task == "y" and e.to_state == "running")
    assert y_started > bad_failed
    for name in ("child", "grandchild", "join"):
        assert [e.to_state for e in task_events(store, run_id, name)] == ["skipped"]


@pytest.mark.parametrize("policy", ["fail_fast", "continue"])
def test_on_failure_hooks_run_when_the_run_fails(
    store, make_engine, tmp_path: Path, policy: str
) -> None:
    log = tmp_path / "hooks.log"
    spec = workflow(
        {"bad": py("fail", retry=NO_RETRY), "ok": py("anoop")},
        failure_policy=policy,
        on_failure={
            "notify": py("record", params={"log": str(log)}),
            "cleanup": py("record", params={"log": str(log)}, needs=["notify"]),
        },
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED

    rows = tasks_by_name(store, run_id)
    assert rows["notify"].state == rows["cleanup"].state == "succeeded"
    assert log.read_text().splitlines() == ["notify 1", "cleanup 1"]
    evs = store.get_events(run_id)
    last_main = max(e.id for e in evs if e.task in ("bad", "ok"))
    first_hook = min(e.id for e in evs if e.task in ("notify", "cleanup"))
    assert first_hook > last_main  # hooks start once the main tasks are settled
    run_end = [e for e in evs if e.task is None][-1]
    assert run_end.to_state == "failed"
    assert run_end.id > max(e.id for e in evs if e.task == "cleanup")


def test_on_failure_hooks_are_skipped_when_the_run_succeeds(
    store, make_engine, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    spec = workflow(
        {"ok": py("anoop")},
        on_failure={"notify": py("record", params={"log": str(log)})},
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    assert tasks_by_name(store, run_id)["notify"].state == "skipped"
    assert not log.exists()
    assert [e.to_state for e in task_events(store, run_id, "notify")] == ["skipped"]


def test_a_failing_hook_does_not_change_the_outcome_or_stop_other_hooks(
    store, make_engine, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    spec = workflow(
        {"bad": py("fail", retry=NO_RETRY)},
        on_failure={
            "broken": py("fail", retry=NO_RETRY),
            "notify": py("record", params={"log": str(log)}),
        },
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    rows = tasks_by_name(store, run_id)
    assert (rows["broken"].state, rows["notify"].state) == ("failed", "succeeded")
    assert log.read_text().splitlines() == ["notify 1"]


def test_finished_tasks_keep_no_stale_wait_reason(store, make_engine) -> None:
    """A task cancelled while it waited for a slot must not keep telling status views that it
    is "waiting for run max_concurrency"."""
    spec = workflow(
        {
            "bad": py("fail", params={"seconds": 0.1}, priority="high", retry=NO_RETRY),
            "b": py("anoop"),
            "c": py("anoop"),
        },
        max_concurrency=1,
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    rows = tasks_by_name(store, run_id)
    assert (rows["b"].state, rows["c"].state) == ("cancelled", "cancelled")
    assert {n: r.wait_reason for n, r in rows.items()} == {"bad": None, "b": None, "c": None}


def test_fail_fast_stops_siblings_started_in_the_same_tick(store, make_engine):
    """`a` fails on its first step while `b` and `c` were started with it but have not run yet:
    they must still settle (cancelled), free their slots, and the run must end."""
    spec = workflow(
        {
            "a": py("fail_now", retry={"max_retries": 0}),
            "b": py("anoop"),
            "c": py("anoop"),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id), timeout=5) is RunState.FAILED
    states = {t.name: t.state for t in store.get_tasks(run_id)}
    assert states == {"a": "failed", "b": "cancelled", "c": "cancelled"}
    assert engine.queue.running == 0
