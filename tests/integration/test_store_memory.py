"""What the in-process store (reviewflow.store.memory) does beyond the Store contract
(test_store_base_contract.py): a batch is applied whole or not at all, as a database transaction
would be; its outbox (a private in-memory SQLite) keeps an enqueue whole too; and two stores
share nothing."""

from __future__ import annotations

import pytest

from reviewflow.errors import StoreError
from reviewflow.store import MemoryStore, outbox
from reviewflow.store.base import Batch
from rfhelpers import create_run_in, event_tuple, task_row

OWNER = "host-a:1:aaaa"


def test_a_batch_naming_a_task_the_run_lacks_is_refused_whole() -> None:
    store = MemoryStore()
    create_run_in(store)
    assert store.claim_run("r1", OWNER, 2000.0, expected=None)
    before = (store.get_run("r1"), store.get_tasks("r1"), store.get_events("r1"))
    batch = Batch(
        "r1",
        OWNER,
        3000.0,
        run=("running", 1.0, None, None),
        tasks=[task_row("a"), task_row("ghost")],
        events=[event_tuple("r1", "running", "a")],
    )
    with pytest.raises(StoreError, match="has no task 'ghost'"):
        store.write(batch)
    assert (store.get_run("r1"), store.get_tasks("r1"), store.get_events("r1")) == before
    batch.tasks = [task_row("a")]
    assert store.write(batch) is None  # the same batch without the stranger goes through
    assert {t.name: t.state for t in store.get_tasks("r1")}["a"] == "running"


def test_an_enqueue_that_fails_midway_adds_nothing() -> None:
    store = MemoryStore()
    good = outbox.OutboxItem("webhook", "k1", {"event": "run_finished"})
    bad = outbox.OutboxItem("webhook", "k2", {"event": {"not", "json"}})  # a set: no JSON
    with pytest.raises(TypeError):
        store.enqueue([good, bad])
    assert store.list_outbox() == [] and store.next_outbox_due() is None
    assert store.enqueue([good]) == 1  # the store is usable after the rollback


def test_two_memory_stores_share_nothing() -> None:
    first, second = MemoryStore(), MemoryStore()
    create_run_in(first)
    first.enqueue([outbox.OutboxItem("webhook", "k1", {"event": "run_finished"})])
    assert second.get_run("r1") is None and second.list_runs() == []
    assert second.list_outbox() == [] and second.claim_outbox("b", 60.0, 10) == []
    create_run_in(second)  # the same run id is free there
    assert [r.dedupe_key for r in first.list_outbox()] == ["k1"]
