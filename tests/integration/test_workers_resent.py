"""A worker that sends a batch again after an error (its first sending committed but the reply
was lost) records nothing twice: no second `succeeded`, no second failure, no duplicate start
event, and nothing called a late completion.

The worker re-queues a batch whose write raised with `resent` set (worker.py); these tests send
the same batch twice through the worker's queue operations, as the worker does after such an
error, against a real PostgreSQL.
"""

from __future__ import annotations

import json

from reviewflow.cluster.queue import Cluster, Outcome, Pending
from reviewflow.store.postgres import PostgresStore
from rfhelpers import py, task_events, tasks_by_name, workflow


def _sent_twice(cluster: Cluster, outcome: Outcome, events: list) -> list[Outcome]:
    first = Pending(outcomes=[outcome], events=list(events))
    assert cluster.record(first) == []
    again = Pending(outcomes=[outcome], events=list(events), resent=True)
    return cluster.record(again)


def _transitions(store: PostgresStore, run_id: str, task: str) -> list[tuple]:
    return [(e.from_state, e.to_state, e.attempt) for e in task_events(store, run_id, task)]


def test_a_success_sent_again_is_recorded_once(pg_store: PostgresStore) -> None:
    Cluster(pg_store).submit(
        workflow({"t": py("anoop"), "after": py("anoop", needs=["t"])}), run_id="r"
    )
    worker = Cluster(pg_store)
    [claimed] = worker.claim(1)
    done = Outcome("r", "t", claimed.attempt, "succeeded", result={"ok": 1})
    assert _sent_twice(worker, done, [claimed.event]) == []
    assert _transitions(pg_store, "r", "t") == [
        ("blocked", "ready", 0),
        ("ready", "running", 1),
        ("running", "succeeded", 1),
    ]
    rows = tasks_by_name(pg_store, "r")
    assert (rows["t"].state, json.loads(rows["t"].result)) == ("succeeded", {"ok": 1})
    assert rows["after"].state == "ready"  # readied once: its counter went down once
    assert _transitions(pg_store, "r", "after") == [("blocked", "ready", 0)]


def test_a_failure_sent_again_is_recorded_once(pg_store: PostgresStore) -> None:
    Cluster(pg_store).submit(workflow({"t": py("anoop", retry={"max_retries": 3})}), run_id="f")
    worker = Cluster(pg_store)
    [claimed] = worker.claim(1)
    failed = Outcome("f", "t", claimed.attempt, "failed", error="ValueError: boom")
    assert _sent_twice(worker, failed, [claimed.event]) == []
    row = tasks_by_name(pg_store, "f")["t"]
    assert row.state == "retry_wait" and row.attempts == 1
    assert [e["error"] for e in json.loads(row.errors)] == ["ValueError: boom"]
    assert [t[:2] for t in _transitions(pg_store, "f", "t")] == [
        ("blocked", "ready"),
        ("ready", "running"),
        ("running", "retry_wait"),
    ]


def test_another_owners_late_completion_is_still_rejected(pg_store: PostgresStore) -> None:
    Cluster(pg_store).submit(workflow({"t": py("anoop")}), run_id="z")
    owner = Cluster(pg_store)
    [claimed] = owner.claim(1)
    done = Outcome("z", "t", claimed.attempt, "succeeded")
    assert owner.record(Pending(outcomes=[done], events=[claimed.event])) == []
    failed = Outcome("z", "t", claimed.attempt, "failed", error="late")
    assert Cluster(pg_store).record(Pending(outcomes=[failed], resent=True)) == [failed]
    assert [t[:2] for t in _transitions(pg_store, "z", "t")][-1] == ("succeeded", "succeeded")
