"""Claim order and concurrency limits for ready tasks.

Claim order: a ready task's sort key is `ready_at - priority * aging_interval`. Among tasks that
became ready together, higher priority runs first; a lower-priority task gains one priority point
for every `aging_interval` seconds it waits (default 600 s: a `low` task that has waited 20
minutes goes before a `high` one that just became ready). Starvation is therefore bounded by
design, and one heap serves every claim: O(log n) per task, no rescans.

Limits are checked at claim time: global (per process), per run (`max_concurrency`) and per key
(`concurrency_key`). A task held back by a run or key limit is parked in a heap of its run or key
with a `wait_reason`; a slot freed there returns the best parked task to the main heap.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from .runtime import LiveTask
from .states import TaskState

DEFAULT_AGING_INTERVAL = 600.0
Entry = tuple[float, int, int, LiveTask]


class ReadyQueue:
    """Ready tasks of every live run, in claim order, behind three kinds of limit."""

    def __init__(
        self,
        global_limit: int,
        *,
        aging_interval: float = DEFAULT_AGING_INTERVAL,
        on_wait: Callable[[LiveTask], None] | None = None,
    ) -> None:
        self.global_limit = global_limit
        self.aging_interval = aging_interval
        self.key_limits: dict[str, int] = {}
        self.key_running: dict[str, int] = {}
        self.running = 0
        self._heap: list[Entry] = []
        self._key_parked: dict[str, list[Entry]] = {}
        self._seq = 0
        self._unmarked: list[LiveTask] = []  # pushed while a global slot was free
        self._on_wait = on_wait or (lambda task: None)

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def idle(self) -> bool:
        """Nothing is queued (tasks parked behind a run or key limit do not count)."""
        return not self._heap

    def push(self, task: LiveTask) -> None:
        """Queue a task that has just become ready (its `ready_at` set)."""
        assert task.ready_at is not None
        self._seq += 1
        task.ticket = self._seq
        key = task.ready_at - task.priority * self.aging_interval
        heapq.heappush(self._heap, (key, self._seq, self._seq, task))
        if self.running >= self.global_limit:
            self._wait(task, self._global_reason())
        else:
            self._unmarked.append(task)

    def _global_reason(self) -> str:
        return f"waiting for global limit: {self.running}/{self.global_limit} in use"

    def _wait(self, task: LiveTask, reason: str) -> None:
        if task.wait_reason != reason:
            task.wait_reason = reason
            self._on_wait(task)

    def pop(self) -> LiveTask | None:
        """Claim the next startable task (counting it as running), or None."""
        heap = self._heap
        while self.running < self.global_limit and heap:
            entry = heapq.heappop(heap)
            task = entry[3]
            if task.state is not TaskState.READY or entry[2] != task.ticket:
                continue  # stale entry: the task was cancelled or re-queued
            run = task.run
            key = task.spec.concurrency_key
            if run.halted or run.paused:
                heapq.heappush(run.parked, entry)
                if run.paused:
                    self._wait(task, "waiting: run paused")
                if key is not None:
                    self._unpark_key(key)  # pass on a key slot's wake-up
                continue
            limit = run.max_concurrency
            if limit is not None and run.running >= limit:
                heapq.heappush(run.parked, entry)
                self._wait(task, f"waiting for run max_concurrency: {run.running}/{limit} in use")
                if key is not None:
                    self._unpark_key(key)
                continue
            if key is not None:
                key_limit = self.key_limits.get(key)
                in_use = self.key_running.get(key, 0)
                if key_limit is not None and in_use >= key_limit:
                    heapq.heappush(self._key_parked.setdefault(key, []), entry)
                    self._wait(task, f"waiting for key {key}: {in_use}/{key_limit} in use")
                    self._unpark_one(run.parked)
                    continue
                self.key_running[key] = in_use + 1
            run.running += 1
            self.running += 1
            task.wait_reason = None
            return task
        if not heap:
            self._unmarked.clear()  # everything queued was claimed: nobody left to tell
        elif self._unmarked:
            # The global limit stopped the claim: tell the tasks that queued while it still
            # had room why they wait (each task is told once, so this stays O(1) per task).
            reason = self._global_reason()
            for waiting in self._unmarked:
                if waiting.state is TaskState.READY and waiting.wait_reason is None:
                    self._wait(waiting, reason)
            self._unmarked.clear()
        return None

    def claim(self, task: LiveTask) -> None:
        """Count a ready task as running without queueing it (the caller checked that no
        limit applies and nothing else is waiting)."""
        task.run.running += 1
        self.running += 1
        task.wait_reason = None

    def release(self, task: LiveTask) -> None:
        """A claimed task stopped running: free its slots and requeue who waited for them."""
        run = task.run
        run.running -= 1
        self.running -= 1
        self._unpark_one(run.parked)
        key = task.spec.concurrency_key
        if key is not None:
            self.key_running[key] -= 1
            self._unpark_key(key)

    def _unpark_key(self, key: str) -> None:
        parked = self._key_parked.get(key)
        if parked:
            self._unpark_one(parked)

    def _unpark_one(self, parked: list[Entry]) -> None:
        """Move the best live entry of `parked` to the main heap, dropping stale ones (tasks
        cancelled while they waited) so that they cannot take a freed slot's wake-up."""
        while parked:
            entry = heapq.heappop(parked)
            task = entry[3]
            if task.state is TaskState.READY and entry[2] == task.ticket:
                heapq.heappush(self._heap, entry)
                return

    def unpark_run(self, parked: list[Entry]) -> None:
        """Requeue every task a (resumed) run had parked."""
        for entry in parked:
            heapq.heappush(self._heap, entry)
        parked.clear()
