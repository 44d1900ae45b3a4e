"""How a workers-mode run advances (`cluster/dag.py`) when what it is told conflicts with what
happened meanwhile, driven through the queue on a real PostgreSQL: an attempt handed back after
a cancel ends cancelled, a hook of a cancelled run whose worker died is not run again, a resume
that settles a dead worker's attempt leaves nothing held, and a lost attempt is counted apart
from retries."""

from __future__ import annotations

import time

from reviewflow.cluster.queue import Cluster, Outcome, Pending
from reviewflow.states import RunState
from reviewflow.store.postgres import PostgresStore
from rfhelpers import pg_task_row, py, workflow

NO_RETRY = {"max_retries": 0}


def test_an_attempt_handed_back_after_a_cancel_ends_cancelled(pg_store: PostgresStore) -> None:
    """A draining worker hands back an attempt of a run the user just cancelled: it must not
    go back to the queue (nothing would cancel it again)."""
    cluster = Cluster(pg_store)
    run_id, _ = cluster.submit(workflow({"a": py("anoop"), "b": py("anoop", needs=["a"])}))
    (a,) = cluster.claim(1)
    assert cluster.control(run_id, "cancel") is RunState.RUNNING  # `a` still running
    cluster.record(Pending([Outcome(run_id, "a", a.attempt, "interrupted")], [a.event]))
    assert pg_task_row(pg_store, run_id, "a")[0] == "cancelled"
    assert pg_store.get_run(run_id).state == "cancelled"  # type: ignore[union-attr]


def test_a_hook_of_a_cancelled_run_whose_worker_died_is_not_run_again(
    pg_store: PostgresStore,
) -> None:
    dead = Cluster(pg_store, lease_ttl=0.2)
    spec = workflow({"a": py("fail_now", retry=NO_RETRY)}, on_failure={"notify": py("anoop")})
    run_id, _ = dead.submit(spec)
    (a,) = dead.claim(1)
    dead.record(
        Pending(
            [Outcome(run_id, "a", a.attempt, "failed", error="boom", retryable=False)], [a.event]
        )
    )
    (hook,) = dead.claim(1)
    assert hook.name == "notify"
    Cluster(pg_store).control(run_id, "cancel")
    time.sleep(0.3)  # the hook's lease expires: its worker is gone
    Cluster(pg_store).maintain()
    assert pg_task_row(pg_store, run_id, "notify")[0] == "cancelled"
    assert pg_store.get_run(run_id).state == "cancelled"  # type: ignore[union-attr]


def test_resume_that_settles_a_dead_workers_attempt_leaves_nothing_held(
    pg_store: PostgresStore,
) -> None:
    dead = Cluster(pg_store, lease_ttl=0.2)
    run_id, _ = dead.submit(workflow({"a": py("anoop")}))
    (a,) = dead.claim(1)
    dead.record(Pending([], [a.event]))
    assert dead.control(run_id, "pause") is RunState.PAUSED
    time.sleep(0.3)
    # Resuming reaps `a` (its worker is gone), then resumes the run.
    assert Cluster(pg_store).control(run_id, "resume") is RunState.RUNNING
    state, held, _attempts, owner = pg_task_row(pg_store, run_id, "a")
    assert (state, held, owner) == ("ready", None, None)
    assert Cluster(pg_store).claim(1)[0].name == "a"


def test_status_counts_lost_attempts_apart_from_retries(pg_store: PostgresStore) -> None:
    from reviewflow.status import run_status

    dead = Cluster(pg_store, lease_ttl=0.1)
    run_id, _ = dead.submit(workflow({"a": py("anoop")}))
    (a,) = dead.claim(1)
    dead.record(Pending([], [a.event]))
    time.sleep(0.2)
    live = Cluster(pg_store)
    live.maintain()  # the lease expired: back to ready, a lost attempt
    (again,) = live.claim(1)
    live.record(Pending([Outcome(run_id, "a", again.attempt, "succeeded")], [again.event]))
    metrics = run_status(pg_store, run_id)["metrics"]
    assert (metrics["attempts"], metrics["retries"], metrics["lost_attempts"]) == (2, 0, 1)
    assert metrics["retry_rate"] == 0
