"""The `approval` task type at engine level: a task that waits for a person's decision.

The decision lives in the store (`approvals` table), so it is written here the way
`reviewflow approve|reject` writes it: `store.decide_approval` with the event that records the
approver and the comment, through a second handle on the store (what another process sees).
Tests of durable behaviour run on every store backend (the `stores`/`store` fixtures: memory,
SQLite, PostgreSQL when a server is available); pure engine behaviour uses a MemoryStore.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from reviewflow.errors import ApprovalDecided, RunNotFound, SpecError
from reviewflow.states import RunState
from reviewflow.status import run_status
from reviewflow.store import MemoryStore
from reviewflow.store.base import Batch, Store
from rfhelpers import arun, sh, task_events, tasks_by_name, wait_until, workflow

GATE = "approve"


def gate_spec(gate: dict[str, Any] | None = None, **run_fields: Any):
    """build -> approve (an approval gate) -> ship."""
    body = {
        "type": "approval",
        "needs": ["build"],
        "params": {"approvers": ["alice", "bob"]},
        **(gate or {}),
    }
    return workflow(
        {
            "build": sh("echo built"),
            GATE: body,
            "ship": sh("echo shipped", needs=[GATE]),
        },
        name="gate",
        **run_fields,
    )


def decide(
    store: Store, run_id: str, decision: str, who: str, comment: str | None = None, task: str = GATE
):
    """Record a decision as `reviewflow approve|reject` does (event included)."""
    row = tasks_by_name(store, run_id)[task]
    now = time.time()
    detail = f"{decision} by {who}" + (f": {comment}" if comment else "")
    return store.decide_approval(
        run_id,
        task,
        decision,
        who,
        comment,
        now,
        (run_id, task, row.state, row.state, row.attempts, now, detail),
    )


def waiting(store: Store, run_id: str, task: str = GATE) -> bool:
    row = tasks_by_name(store, run_id)[task]
    return row.state == "running" and bool(row.wait_reason)


def details(store: Store, run_id: str, task: str = GATE) -> list[str]:
    return [e.detail for e in task_events(store, run_id, task) if e.detail]


def hint(run_id: str, task: str = GATE) -> str:
    return f"waiting for approval: reviewflow approve {run_id} {task}"


def run_with_decision(
    engine, store, other: Store, run_id: str, decision: str, who: str, comment: str | None
) -> RunState:
    """Execute the run; once the gate waits, decide through `other`."""

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: waiting(store, run_id), timeout=10)
        await asyncio.sleep(0.05)
        decide(other, run_id, decision, who, comment)
        return await execution

    return arun(main())


# ---------------------------------------------------------------------------- decisions


def test_an_approval_written_to_the_store_lets_the_run_continue(stores, make_engine) -> None:
    store = stores.main
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec())
    state = run_with_decision(
        engine, store, stores.second_handle(), run_id, "approved", "alice", "ok"
    )
    assert state is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    assert {n: r.state for n, r in rows.items()} == dict.fromkeys(
        ("build", GATE, "ship"), "succeeded"
    )
    assert rows[GATE].attempts == 1
    assert rows[GATE].wait_reason is None  # no longer waiting
    doc = {t["name"]: t for t in run_status(store, run_id)["tasks"]}
    assert doc[GATE]["result"] == {"decision": "approved", "approver": "alice", "comment": "ok"}
    said = details(store, run_id)
    assert said == [hint(run_id), "approved by alice: ok"]
    evs = task_events(store, run_id, GATE)
    note = next(e for e in evs if e.detail == hint(run_id))
    assert (note.from_state, note.to_state, note.attempt) == ("running", "running", 1)
    ids = {(e.detail or e.to_state): e.id for e in evs}
    assert ids[hint(run_id)] < ids["approved by alice: ok"] < ids["succeeded"]
    ship_start = next(e for e in task_events(store, run_id, "ship") if e.to_state == "running")
    assert ship_start.id > ids["succeeded"]
    record = store.get_approval(run_id, GATE)
    assert (record.decision, record.approver, record.comment) == ("approved", "alice", "ok")
    assert record.requested_at <= record.decided_at


@pytest.mark.parametrize(("policy", "ship"), [("fail_fast", "cancelled"), ("continue", "skipped")])
def test_a_rejection_fails_the_gate_and_its_dependents_do_not_run(
    stores, make_engine, policy: str, ship: str
) -> None:
    store = stores.main
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec(failure_policy=policy))
    state = run_with_decision(
        engine, store, stores.second_handle(), run_id, "rejected", "bob", "too long"
    )
    assert state is RunState.FAILED
    rows = tasks_by_name(store, run_id)
    assert rows[GATE].state == "failed"
    assert rows[GATE].error == "rejected by bob: too long"
    assert rows[GATE].attempts == 1  # a decision is final: never retried
    assert rows["ship"].state == ship and rows["ship"].attempts == 0
    assert "rejected by bob: too long" in details(store, run_id)
    assert GATE in (store.get_run(run_id).error or "")


def test_a_decision_taken_before_the_gate_starts_is_used_at_once(stores, make_engine) -> None:
    """Decided while the gate is still blocked: no wait, no "waiting for approval" note."""
    store = stores.main
    engine = make_engine(store)
    spec = workflow(
        {
            "build": sh("sleep 0.3"),
            GATE: {"type": "approval", "needs": ["build"]},
            "ship": sh("true", needs=[GATE]),
        }
    )
    run_id, _ = engine.submit(spec)

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(
            lambda: tasks_by_name(store, run_id)["build"].state == "running", timeout=10
        )
        assert tasks_by_name(store, run_id)[GATE].state == "blocked"
        decide(stores.second_handle(), run_id, "approved", "alice")
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    assert details(store, run_id) == ["approved by alice"]
    record = store.get_approval(run_id, GATE)
    assert record.requested_at is not None and record.requested_at >= record.decided_at


def test_the_status_shows_the_gate_waiting(stores, make_engine) -> None:
    store = stores.main
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec())
    seen: dict[str, Any] = {}

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: waiting(store, run_id), timeout=10)
        doc = run_status(stores.second_handle(), run_id)
        seen.update({t["name"]: t for t in doc["tasks"]})
        decide(store, run_id, "approved", "alice")
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    assert seen[GATE]["state"] == "running"
    assert seen[GATE]["waiting"] == hint(run_id)
    assert "waiting" not in seen["build"] and seen["ship"]["state"] == "blocked"
    after = {t["name"]: t for t in run_status(store, run_id)["tasks"]}
    assert "waiting" not in after[GATE]


def test_cancelling_a_run_stops_the_wait(stores, make_engine) -> None:
    store = stores.main
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec())

    async def main() -> tuple[RunState, float]:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: waiting(store, run_id), timeout=10)
        start = time.monotonic()
        engine.cancel(run_id)
        state = await execution
        return state, time.monotonic() - start

    state, took = arun(main())
    assert state is RunState.CANCELLED and took < 2.0
    rows = tasks_by_name(store, run_id)
    assert (rows[GATE].state, rows["ship"].state) == ("cancelled", "cancelled")
    assert store.get_approval(run_id, GATE).decision is None


def test_a_decision_taken_while_no_process_runs_the_run_is_found_on_resume(
    stores, make_engine
) -> None:
    """Ctrl-C while waiting (the attempt is put back), a decision meanwhile, then resume."""
    store = stores.main
    first = make_engine(store)
    run_id, _ = first.submit(gate_spec())

    async def interrupted() -> RunState:
        execution = asyncio.create_task(first.execute(run_id))
        assert await wait_until(lambda: waiting(store, run_id), timeout=10)
        first.shutdown()
        return await execution

    assert arun(interrupted()) is RunState.RUNNING
    other = stores.second_handle()
    decide(other, run_id, "approved", "alice", "while away")
    assert arun(make_engine(other).execute(run_id)) is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    assert rows[GATE].state == "succeeded" and rows["ship"].state == "succeeded"
    assert rows["build"].attempts == 1
    assert details(store, run_id).count(hint(run_id)) == 1  # decided: no second prompt
    assert "approved by alice: while away" in details(store, run_id)


# ---------------------------------------------------------------------------- timeouts


def test_no_decision_in_time_rejects(store, make_engine) -> None:
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec({"timeout": "0.4s", "on_timeout": "reject"}))
    start = time.monotonic()
    assert arun(engine.execute(run_id)) is RunState.FAILED
    took = time.monotonic() - start
    assert 0.4 <= took < 5.0
    rows = tasks_by_name(store, run_id)
    assert rows[GATE].state == "failed"
    assert rows[GATE].error == "rejected by timeout: no decision within 0.4s"
    assert rows[GATE].attempts == 1
    assert rows["ship"].state == "cancelled"
    record = store.get_approval(run_id, GATE)
    assert (record.decision, record.approver, record.comment) == (
        "rejected",
        "timeout",
        "no decision within 0.4s",
    )
    assert record.decided_at - record.requested_at >= 0.4
    assert "rejected by timeout: no decision within 0.4s" in details(store, run_id)
    assert not [e for e in task_events(store, run_id, GATE) if e.to_state == "timed_out"]


def test_reject_is_the_default_policy(make_engine) -> None:
    store = MemoryStore()
    engine = make_engine(store)
    spec = gate_spec({"timeout": "0.2s"})
    assert spec.tasks[GATE].on_timeout is None
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    assert tasks_by_name(store, run_id)[GATE].error == (
        "rejected by timeout: no decision within 0.2s"
    )


def test_no_decision_in_time_approves_with_on_timeout_approve(store, make_engine) -> None:
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec({"timeout": "0.3s", "on_timeout": "approve"}))
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    rows = tasks_by_name(store, run_id)
    assert rows["ship"].state == "succeeded"
    doc = {t["name"]: t for t in run_status(store, run_id)["tasks"]}
    assert doc[GATE]["result"] == {
        "decision": "approved",
        "approver": "timeout",
        "comment": "no decision within 0.3s",
    }
    assert "approved by timeout: no decision within 0.3s" in details(store, run_id)


def test_escalation_notes_who_and_keeps_waiting(stores, make_engine) -> None:
    store = stores.main
    engine = make_engine(store)
    params: dict[str, Any] = {"approvers": ["alice"], "escalate_to": "carol"}
    text = "escalated to carol: no decision within 0.2s"
    run_id, _ = engine.submit(
        gate_spec({"timeout": "0.2s", "on_timeout": "escalate", "params": params})
    )
    reason: list[str | None] = []

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: text in details(store, run_id), timeout=10)
        await asyncio.sleep(0.3)  # past twice the timeout: still waiting, escalated once
        row = tasks_by_name(store, run_id)[GATE]
        assert row.state == "running" and not execution.done()
        reason.append(row.wait_reason)
        decide(stores.second_handle(), run_id, "approved", "alice", "late but fine")
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    assert details(store, run_id) == [hint(run_id), text, "approved by alice: late but fine"]
    assert reason[0] is not None and text in reason[0] and hint(run_id) in reason[0]
    assert store.get_approval(run_id, GATE).approver == "alice"
    assert tasks_by_name(store, run_id)["ship"].state == "succeeded"


def test_escalation_to_nobody_in_particular(make_engine) -> None:
    store = MemoryStore()
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec({"timeout": "0.1s", "on_timeout": "escalate"}))

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: len(details(store, run_id)) == 2, timeout=10)
        decide(store, run_id, "approved", "bob")
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    assert details(store, run_id) == [
        hint(run_id),
        "escalated: no decision within 0.1s",
        "approved by bob",
    ]


def test_an_approval_without_timeout_has_no_limit(make_engine) -> None:
    """Neither the 60 s default nor `defaults.timeout` bounds the wait for a person; the
    shell tasks of the same workflow keep their timeout."""
    spec = workflow(
        {
            "build": sh("true"),
            GATE: {"type": "approval", "needs": ["build"]},
            "ship": sh("true", needs=[GATE]),
        },
        defaults={"timeout": "0.2s"},
    )
    assert spec.tasks[GATE].timeout is None
    assert spec.tasks["build"].timeout == 0.2
    assert gate_spec().tasks[GATE].timeout is None
    assert gate_spec().tasks["build"].timeout == 60
    store = MemoryStore()  # engine behaviour: one backend is enough
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)

    async def main() -> RunState:
        execution = asyncio.create_task(engine.execute(run_id))
        assert await wait_until(lambda: waiting(store, run_id), timeout=10)
        await asyncio.sleep(0.5)  # well past defaults.timeout
        assert tasks_by_name(store, run_id)[GATE].state == "running"
        decide(store, run_id, "approved", "alice")
        return await execution

    assert arun(main()) is RunState.SUCCEEDED
    evs = task_events(store, run_id, GATE)
    assert not [e for e in evs if e.to_state in ("timed_out", "failed", "retry_wait")]
    assert tasks_by_name(store, run_id)[GATE].attempts == 1


def test_the_timeout_counts_from_the_first_request(stores, make_engine) -> None:
    """A gate that first asked long ago (an earlier process) times out at once on start."""
    store = stores.main
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec({"timeout": "1s", "on_timeout": "reject"}))
    asked = time.time() - 10
    opened = stores.second_handle().open_approval(run_id, GATE, asked)
    assert opened.requested_at == asked and opened.decision is None
    start = time.monotonic()
    assert arun(engine.execute(run_id)) is RunState.FAILED
    assert time.monotonic() - start < 1.0  # no fresh 1 s wait
    rows = tasks_by_name(store, run_id)
    assert rows[GATE].error == "rejected by timeout: no decision within 1s"
    record = store.get_approval(run_id, GATE)
    assert record.requested_at == asked and record.approver == "timeout"
    assert hint(run_id) in details(store, run_id)  # it did ask before timing out


def test_the_timeout_counts_across_an_interruption(stores, make_engine) -> None:
    """Ctrl-C 0.35 s into a 0.6 s wait; the resumed attempt times out 0.6 s after the first
    request, not 0.6 s after the restart."""
    store = stores.main
    first = make_engine(store)
    run_id, _ = first.submit(gate_spec({"timeout": "0.6s", "on_timeout": "reject"}))

    async def interrupted() -> RunState:
        execution = asyncio.create_task(first.execute(run_id))
        assert await wait_until(lambda: waiting(store, run_id), timeout=10)
        await asyncio.sleep(0.35)
        first.shutdown()
        return await execution

    assert arun(interrupted()) is RunState.RUNNING
    restarted = time.time()
    assert arun(make_engine(stores.second_handle()).execute(run_id)) is RunState.FAILED
    record = store.get_approval(run_id, GATE)
    assert record.approver == "timeout"
    assert record.requested_at < restarted - 0.3
    assert 0.6 <= record.decided_at - record.requested_at < 1.2
    assert record.decided_at < restarted + 0.55  # a fresh wait would end at restarted + 0.6


# ---------------------------------------------------------------------------- the store


def test_the_store_keeps_the_first_request_and_one_decision(stores, make_engine) -> None:
    store = stores.main
    run_id, _ = make_engine(store).submit(gate_spec())
    other = stores.second_handle()
    assert store.get_approval(run_id, GATE) is None
    first = store.open_approval(run_id, GATE, 100.0)
    assert (first.run_id, first.task, first.requested_at, first.decision) == (
        run_id,
        GATE,
        100.0,
        None,
    )
    assert other.open_approval(run_id, GATE, 200.0).requested_at == 100.0
    decided = other.decide_approval(run_id, GATE, "approved", "alice", "ok", 300.0)
    assert (decided.decision, decided.approver, decided.comment, decided.decided_at) == (
        "approved",
        "alice",
        "ok",
        300.0,
    )
    assert store.get_approval(run_id, GATE) == decided
    with pytest.raises(ApprovalDecided, match="already approved by alice"):
        store.decide_approval(run_id, GATE, "rejected", "bob", "no", 400.0)
    assert other.get_approval(run_id, GATE) == decided  # the first decision stands
    assert store.open_approval(run_id, GATE, 500.0) == decided  # reopening changes nothing


def test_the_store_accepts_a_decision_before_the_request(stores, make_engine) -> None:
    store = stores.main
    run_id, _ = make_engine(store).submit(gate_spec())
    n_events = len(store.get_events(run_id))
    event = (run_id, GATE, "blocked", "blocked", 0, 50.0, "rejected by bob: early")
    decided = store.decide_approval(run_id, GATE, "rejected", "bob", "early", 50.0, event)
    assert decided.requested_at is None
    opened = stores.second_handle().open_approval(run_id, GATE, 60.0)
    assert (opened.requested_at, opened.decision, opened.approver) == (60.0, "rejected", "bob")
    evs = store.get_events(run_id)
    assert len(evs) == n_events + 1 and evs[-1].detail == "rejected by bob: early"


def test_the_store_refuses_approvals_of_unknown_runs(store) -> None:
    with pytest.raises(RunNotFound):
        store.open_approval("nope", GATE, 1.0)
    with pytest.raises(RunNotFound):
        store.decide_approval("nope", GATE, "approved", "alice", None, 1.0)
    assert store.get_approval("nope", GATE) is None


# ---------------------------------------------------------------------------- the spec


def _spec_error(tasks: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        workflow(tasks)
    return info.value


def test_on_timeout_belongs_to_approval_tasks_only() -> None:
    exc = _spec_error({"build": sh("true", on_timeout="reject")})
    assert (exc.task, exc.field) == ("build", "on_timeout")


def test_on_timeout_must_be_a_known_policy() -> None:
    exc = _spec_error({GATE: {"type": "approval", "on_timeout": "ignore"}})
    assert (exc.task, exc.field) == (GATE, "on_timeout")


@pytest.mark.parametrize("field", ["run", "call"])
def test_an_approval_task_runs_nothing(field: str) -> None:
    value: Any = ["echo", "hi"] if field == "run" else "tasks_for_tests:anoop"
    exc = _spec_error({GATE: {"type": "approval", field: value}})
    assert (exc.task, exc.field) == (GATE, field)
    assert "person" in exc.message


@pytest.mark.parametrize("approvers", ["alice", {"alice": 1}, ["alice", 2]])
def test_approvers_are_a_list_of_names(approvers: Any) -> None:
    exc = _spec_error({GATE: {"type": "approval", "params": {"approvers": approvers}}})
    assert (exc.task, exc.field) == (GATE, "params.approvers")


def test_a_valid_gate() -> None:
    spec = gate_spec(
        {
            "timeout": "72h",
            "on_timeout": "escalate",
            "params": {"approvers": ["alice"], "escalate_to": "carol"},
        }
    )
    task = spec.tasks[GATE]
    assert (task.type, task.timeout, task.on_timeout) == ("approval", 72 * 3600, "escalate")
    assert (task.run, task.call) == (None, None)


# ---------------------------------------------------------------------------- known bugs


def test_a_recorded_approval_survives_many_lost_processes(stores, make_engine) -> None:
    """The waiting process may exit any number of times (a CI job, a laptop): a dead owner
    left the gate running at attempt 4; alice approved meanwhile; resume must succeed."""
    store = stores.main
    engine = make_engine(store)
    run_id, _ = engine.submit(gate_spec(), run_id="lost4")
    dead = f"{socket.gethostname()}:999999:dead"
    now = time.time()
    assert store.claim_run(run_id, dead, now + 30, None)

    def row(name: str, state: str, attempts: int) -> tuple[Any, ...]:
        wait = hint(run_id) if name == GATE else None
        return (
            state,
            attempts,
            now,
            now,
            now if state == "succeeded" else None,
            None,
            None,
            None,
            None,
            wait,
            None,
            name,
        )

    store.write(
        Batch(
            run_id,
            dead,
            now + 30,
            run=("running", now, None, None),
            tasks=[row("build", "succeeded", 1), row(GATE, "running", 4)],
        )
    )
    store.open_approval(run_id, GATE, now - 60)
    decide(stores.second_handle(), run_id, "approved", "alice", "ok")
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    assert tasks_by_name(store, run_id)["ship"].state == "succeeded"


def test_a_waiting_gate_does_not_hold_a_concurrency_slot(make_engine) -> None:
    store = MemoryStore()
    engine = make_engine(store)
    spec = workflow(
        {
            GATE: {"type": "approval", "priority": "high"},
            "other": sh("true"),
        },
        max_concurrency=1,
    )
    run_id, _ = engine.submit(spec)

    async def main() -> bool:
        execution = asyncio.create_task(engine.execute(run_id))
        try:
            return await wait_until(
                lambda: tasks_by_name(store, run_id)["other"].state == "succeeded", timeout=1
            )
        finally:
            decide(store, run_id, "approved", "alice")
            await execution

    assert arun(main())


def test_a_gate_is_escalated_once_across_restarts(stores, make_engine) -> None:
    store = stores.main
    first = make_engine(store)
    run_id, _ = first.submit(
        gate_spec({"timeout": "0.2s", "on_timeout": "escalate", "params": {"escalate_to": "carol"}})
    )
    text = "escalated to carol: no decision within 0.2s"

    async def interrupted() -> RunState:
        execution = asyncio.create_task(first.execute(run_id))
        assert await wait_until(lambda: text in details(store, run_id), timeout=10)
        first.shutdown()
        return await execution

    assert arun(interrupted()) is RunState.RUNNING
    other = stores.second_handle()
    second = make_engine(other)

    async def resumed() -> RunState:
        execution = asyncio.create_task(second.execute(run_id))
        assert await wait_until(lambda: waiting(other, run_id), timeout=10)
        await asyncio.sleep(0.3)
        decide(other, run_id, "approved", "carol")
        return await execution

    assert arun(resumed()) is RunState.SUCCEEDED
    assert details(store, run_id).count(text) == 1
