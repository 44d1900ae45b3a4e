"""`trigger: all_done`: a task that runs once its dependencies have ended, whatever the outcome
(a review summary that must report failed checks too)."""

from __future__ import annotations

import json

from reviewflow.states import RunState
from rfhelpers import arun, py, tasks_by_name, workflow


def test_all_done_task_runs_after_a_failure_and_sees_it(store, make_engine):
    spec = workflow(
        {
            "ok": py("anoop"),
            "bad": py("fail", retry={"max_retries": 0}),
            "after_bad": py("anoop", needs=["bad"]),  # skipped: its dependency failed
            "report": py("failures_echo", needs=["ok", "bad", "after_bad"], trigger="all_done"),
            "after_report": py("anoop", needs=["report"]),
        },
        failure_policy="continue",
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    tasks = tasks_by_name(store, run_id)
    states = {n: t.state for n, t in tasks.items()}
    assert states == {
        "ok": "succeeded",
        "bad": "failed",
        "after_bad": "skipped",
        "report": "succeeded",
        "after_report": "succeeded",
    }
    result = json.loads(tasks["report"].result)
    assert set(result["failures"]) == {"bad", "after_bad"}
    assert "failed on purpose" in result["failures"]["bad"]
    assert result["failures"]["after_bad"] == "skipped"
    assert result["results"] == {"ok": None, "bad": None, "after_bad": None}
    # It started only after every dependency had ended.
    ended = max(tasks[d].finished_at for d in ("ok", "bad", "after_bad"))
    assert tasks["report"].started_at >= ended


def test_all_done_task_waits_for_every_dependency(store, make_engine):
    spec = workflow(
        {
            "bad": py("fail", retry={"max_retries": 0}),
            "slow": py("asleep", params={"seconds": 0.3}),
            "report": py("failures_echo", needs=["bad", "slow"], trigger="all_done"),
        },
        failure_policy="continue",
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    arun(engine.execute(run_id))
    tasks = tasks_by_name(store, run_id)
    assert tasks["report"].state == "succeeded"
    assert tasks["report"].started_at >= tasks["slow"].finished_at


def test_fail_fast_cancels_all_done_tasks_too(store, make_engine):
    """fail_fast stops the run: a report task is cancelled; on_failure hooks are for reporting."""
    spec = workflow(
        {
            "bad": py("fail", retry={"max_retries": 0}),
            "report": py("failures_echo", needs=["bad"], trigger="all_done"),
        },
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    assert tasks_by_name(store, run_id)["report"].state == "cancelled"
