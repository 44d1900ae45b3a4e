"""Storing a new run, all of its tasks blocked: `Engine.submit` without the engine.

`reviewflow review` stores its run first and executes it after; the engine's module brings
asyncio, the executors, the scheduler and the outbox, which the run's creation has no use for
(the review's start-up: docs/benchmarks.md, "Start-up: spawn → run created").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

from .constants import RUN_ID
from .errors import SpecError, StoreError
from .states import RunState, TaskState
from .store.base import RunRecord, TaskRecord

if TYPE_CHECKING:
    from .spec import WorkflowSpec
    from .store.base import Store


def new_run_id(workflow: str) -> str:
    """A sortable, unique id: workflow name, UTC time, random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{workflow}-{stamp}-{secrets.token_hex(3)}"


def run_id_for(spec: WorkflowSpec, run_id: str | None) -> str:
    """The id a new run gets: `run_id` if it is a valid one (SpecError naming run_id if not),
    else a fresh one."""
    if run_id is None:
        return new_run_id(spec.name)
    if not RUN_ID.fullmatch(run_id):
        raise SpecError(
            f"bad run id {run_id!r}: use letters, digits, '_', '.', '-' (at most 200),"
            " starting with a letter, digit or '_'",
            field="run_id",
        )
    return run_id


_BLOCKED = TaskState.BLOCKED.value


class BlockedTasks(Sequence[TaskRecord]):
    """The new run's task rows, made one at a time as the store inserts them: a list of 1M
    TaskRecords was ~150 bytes a task at the submit's memory peak (beside the spec's JSON)."""

    def __init__(self, run_id: str, names: list[str]) -> None:
        self.run_id = run_id
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> TaskRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[TaskRecord]: ...
    def __getitem__(self, index: int | slice) -> TaskRecord | list[TaskRecord]:
        if isinstance(index, slice):
            return [TaskRecord(self.run_id, n, _BLOCKED) for n in self.names[index]]
        return TaskRecord(self.run_id, self.names[index], _BLOCKED)

    def __iter__(self) -> Iterator[TaskRecord]:
        run_id = self.run_id
        return (TaskRecord(run_id, name, _BLOCKED) for name in self.names)


def submit_run(
    store: Store,
    spec: WorkflowSpec,
    *,
    run_id: str | None = None,
    meta: dict[str, str] | None = None,
) -> tuple[str, bool]:
    """Store a new run (all tasks blocked). Returns (run_id, created); an existing id is
    left untouched and reported with created=False (idempotency key)."""
    run_id = run_id_for(spec, run_id)
    now = time.time()
    record = RunRecord(
        run_id=run_id,
        workflow=spec.name,
        state=RunState.PENDING.value,
        spec=spec.stored_json(),
        meta=dict(meta or {}),
        created_at=now,
    )
    tasks = BlockedTasks(run_id, [*spec.tasks, *spec.on_failure])
    event = (run_id, None, None, RunState.PENDING.value, None, now, None)
    try:
        created = store.create_run(record, tasks, [event])
    except StoreError:
        # A commit whose answer was lost (a connection dropped) may have been applied:
        # report what the store holds, so that a failed submit has left nothing.
        if not _committed(store, record):
            raise
        created = True
    return run_id, created


def _committed(store: Store, record: RunRecord) -> bool:
    """Whether the store holds `record` as this submit wrote it (False if it cannot say)."""
    try:
        stored = store.get_run(record.run_id)
    except StoreError:
        return False
    return stored is not None and stored.created_at == record.created_at
