"""Parity by property: generated workflows end the same in every mode.

Hypothesis generates workflows (random DAG shapes up to 40 tasks, `all_done` triggers, retries,
failures and task timeouts on chosen attempts, both failure policies, `on_failure` hooks, key and
run limits, a pause/resume and a cancel at points chosen by progress) and each is executed by
the embedded engine on the memory store and on SQLite, and by two workers on PostgreSQL. The
final task states, attempts, errors (the last one and the list) and results and the run's
outcome and error must be equal: the rule book (`reviewflow.rules`) is the same in all modes, and
so must be what its appliers make of it.

Every story is independent of timing (see parity_tasks.py): an attempt's behaviour is set by
its number; a timeout is only ever met by an attempt that hangs; a run stopped by `fail_fast` or
a cancel is stopped by a task on its last attempt that first waits until every task that can
start has started, while the tasks it does not depend on hang (so they are all running, then
cancelled, whatever the order of events). Limits only change the order, so they are generated
for runs that are not stopped. The run timeout is wall-clock by nature: it is left to the
example-based parity tests of test_workers.py.

The example budget follows the Hypothesis profile (tests/conftest.py): a few examples by default,
`pytest --hypothesis-profile=long tests/integration/test_rules_parity.py` for many more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewflow.cluster.queue import Cluster
from reviewflow.cluster.worker import Worker
from reviewflow.config import validate_spec
from reviewflow.engine import Engine
from reviewflow.spec import WorkflowSpec
from reviewflow.states import RUN_TERMINAL
from reviewflow.store import MemoryStore, SQLiteStore
from reviewflow.store.base import Store
from reviewflow.store.postgres import PostgresStore
from rfhelpers import FLUSH, HEARTBEAT, arun

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))  # parity_tasks

MAX_TASKS = 40
MAX_HOOKS = 3
HANG_TIMEOUT = "500ms"  # only attempts that hang ever meet it
EXAMPLES = max(3, settings.default.max_examples // 20)  # 5 by default, 100 with "long"
POLL = 0.01
POLLS = 6000  # a run that does not end within 60 s of polls fails the example
TERMINAL = {s.value for s in RUN_TERMINAL}
RUN = itertools.count()

EVENTUAL = st.sampled_from(["fail", "hang"])  # failures that a retry overcomes
ANY = st.sampled_from(["ok", "fail", "fatal", "hang"])


# ------------------------------------------------------------------------------ workflows


@dataclass
class Case:
    """A generated workflow (without the folder its tasks leave markers in) and its controls."""

    tasks: dict[str, dict[str, Any]]
    hooks: dict[str, dict[str, Any]]
    run: dict[str, Any]
    stop: str  # "none", "fail" (a fail_fast stop) or "cancel"
    pause_after: str | None  # pause (then resume) once this task's first attempt started
    notes: list[str] = field(default_factory=list)

    def spec(self, folder: Path) -> WorkflowSpec:
        def body(b: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in b.items() if k not in ("script", "barrier")}
            out["params"] = {
                "dir": str(folder),
                "script": b["script"],
                "barrier": b.get("barrier", []),
            }
            return out

        data: dict[str, Any] = {
            "name": "parity",
            "tasks": {n: body(b) for n, b in self.tasks.items()},
            **self.run,
        }
        if self.hooks:
            data["on_failure"] = {n: body(b) for n, b in self.hooks.items()}
        return validate_spec(data)


def _ancestors(name: str, needs: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(needs[name])
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(needs[n])
    return seen


def _script(steps: list[str]) -> dict[str, str]:
    return {str(i): s for i, s in enumerate(steps, 1)}


def _task(
    needs: list[str], trigger: str, retries: int, steps: list[str], timeout: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "python",
        "call": "parity_tasks:scripted",
        "retry": {"max_retries": retries, "base_delay": "1ms", "max_delay": "5ms"},
        "timeout": timeout,
        "script": _script(steps),
    }
    if needs:
        body["needs"] = needs
        body["trigger"] = trigger
    return body


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, MAX_TASKS))
    names = [f"t{i:02}" for i in range(n)]
    needs: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        window = names[max(0, i - draw(st.integers(1, 8))) : i]  # chains, fans and joins
        picked = draw(st.sets(st.sampled_from(window), max_size=3)) if window else set()
        needs[name] = sorted(picked)
    trigger = {
        name: draw(st.sampled_from(["all_succeeded", "all_done"])) if needs[name] else ""
        for name in names
    }
    retries = {name: draw(st.integers(0, 2)) for name in names}
    policy = draw(st.sampled_from(["fail_fast", "continue"]))
    stop = draw(
        st.sampled_from(["none", "fail", "cancel"] if policy == "fail_fast" else ["none", "cancel"])
    )

    def eventual(name: str) -> list[str]:
        k = draw(st.integers(0, retries[name]))
        return [*draw(st.lists(EVENTUAL, min_size=k, max_size=k)), "ok"]

    tasks: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if stop == "none":
        for name in names:
            if policy == "continue":
                steps = draw(st.lists(ANY, min_size=retries[name] + 1, max_size=retries[name] + 1))
            else:  # fail_fast without a stop: every task succeeds in the end
                steps = eventual(name)
            timeout = HANG_TIMEOUT if "hang" in steps else None
            tasks[name] = _task(needs[name], trigger[name], retries[name], steps, timeout)
    else:
        target = draw(st.sampled_from(names))
        above = _ancestors(target, needs)
        barrier = [m for m in names if m != target and m not in above and set(needs[m]) <= above]
        notes.append(f"{stop} by {target}, barrier {barrier}")
        for name in names:
            if name in above:
                steps = eventual(name)
                timeout = HANG_TIMEOUT if "hang" in steps else None
            elif name == target:
                k = draw(st.integers(0, retries[name]))
                steps = ["fail"] * k + ["stop_fail" if stop == "fail" else "stop_cancel"]
                timeout = None
            else:
                steps, timeout = ["hang"], None  # running or blocked when the run stops
            tasks[name] = _task(needs[name], trigger[name], retries[name], steps, timeout)
        tasks[target]["barrier"] = barrier

    run: dict[str, Any] = {"failure_policy": policy}
    if stop == "none":  # limits change the order of events, not the outcome
        if draw(st.booleans()):
            run["max_concurrency"] = draw(st.integers(1, 4))
        keys = draw(st.lists(st.sampled_from(["k1", "k2"]), max_size=2, unique=True))
        if keys:
            run["concurrency_limits"] = {k: draw(st.integers(1, 2)) for k in keys}
            for name in names:
                key = draw(st.sampled_from([None, *keys]))
                if key is not None:
                    tasks[name]["concurrency_key"] = key
    for name in names:
        if draw(st.integers(0, 4)) == 0:
            tasks[name]["priority"] = draw(st.sampled_from(["low", "high"]))

    hooks: dict[str, dict[str, Any]] = {}
    hook_names = [f"h{i}" for i in range(draw(st.integers(0, MAX_HOOKS)))]
    for i, name in enumerate(hook_names):
        hook_needs = sorted(draw(st.sets(st.sampled_from(hook_names[:i]), max_size=2))) if i else []
        r = draw(st.integers(0, 1))
        steps = draw(st.lists(ANY, min_size=r + 1, max_size=r + 1))
        hook_trigger = draw(st.sampled_from(["all_succeeded", "all_done"]))
        timeout = HANG_TIMEOUT if "hang" in steps else None
        hooks[name] = _task(hook_needs, hook_trigger, r, steps, timeout)

    pause_after = draw(st.one_of(st.none(), st.sampled_from(names)))
    return Case(tasks, hooks, run, stop, pause_after, notes)


# ------------------------------------------------------------------------------ modes


def summary(store: Store, run_id: str) -> tuple[Any, ...]:
    run = store.get_run(run_id)
    assert run is not None
    tasks = {
        t.name: (
            t.state,
            t.attempts,
            t.error,
            [(e["attempt"], e["error"]) for e in json.loads(t.errors or "[]")],
            None if t.result is None else json.loads(t.result),
        )
        for t in store.get_tasks(run_id)
    }
    return run.state, run.error, tasks


async def controls(
    case: Case,
    folder: Path,
    ended: Callable[[], Awaitable[bool]],
    command: Callable[[str], Awaitable[None]],
    paused: Callable[[], Awaitable[bool]],
) -> None:
    """Pause then resume once `case.pause_after` started; cancel once the stopping task asks
    for it (its marker "cancel-now"); until the run ended."""
    pause_marker = folder / f"{case.pause_after}.1" if case.pause_after else None
    cancel_marker = folder / "cancel-now" if case.stop == "cancel" else None
    pausing = False
    for _ in range(POLLS):
        if await ended():
            return
        if pause_marker is not None and pause_marker.exists():
            pause_marker, pausing = None, True
            await command("pause")
        elif pausing and await paused():
            pausing = False
            await command("resume")
        if cancel_marker is not None and cancel_marker.exists():
            cancel_marker = None
            await command("cancel")
        await asyncio.sleep(POLL)
    pytest.fail(f"the run did not end within {POLLS} polls")


async def embedded(store: Store, case: Case, folder: Path, run_id: str) -> None:
    engine = Engine(
        store, flush_interval=FLUSH, heartbeat_interval=HEARTBEAT, runs_dir=folder / "runs"
    )
    run = asyncio.create_task(engine.run(case.spec(folder), run_id=run_id))

    async def ended() -> bool:
        return run.done()

    async def command(what: str) -> None:
        getattr(engine, what)(run_id)

    async def paused() -> bool:
        live = engine.live_run(run_id)
        return live is None or live.state.value != "running"

    await controls(case, folder, ended, command, paused)
    await run


@contextlib.asynccontextmanager
async def workers(url: str, folder: Path, n: int = 2) -> AsyncIterator[None]:
    stores = [PostgresStore(url) for _ in range(n)]
    started = [
        Worker(
            s,
            name=f"w{i}",
            concurrency=64,
            lease_ttl=10.0,  # no attempt is lost to a busy machine
            heartbeat_interval=0.1,
            poll_interval=0.05,
            grace=0.1,
            runs_dir=folder / "runs",
        )
        for i, s in enumerate(stores)
    ]
    loops = [asyncio.create_task(w.run()) for w in started]
    try:
        yield
    finally:
        for w in started:
            w.drain()
            w.drain()
        outcomes = await asyncio.wait_for(asyncio.gather(*loops, return_exceptions=True), 10)
        for s in stores:
            s.close()
        await asyncio.to_thread(_join_listeners)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors


def _join_listeners(within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    for thread in threading.enumerate():
        if thread.name == "reviewflow-listen":
            thread.join(max(deadline - time.monotonic(), 0.0))


async def on_workers(pg: PostgresStore, url: str, case: Case, folder: Path, run_id: str) -> None:
    cluster = Cluster(pg)
    cluster.submit(case.spec(folder), run_id=run_id)

    def state() -> str:
        run = pg.get_run(run_id)
        assert run is not None
        return run.state

    async def ended() -> bool:
        return await asyncio.to_thread(state) in TERMINAL

    async def command(what: str) -> None:
        await asyncio.to_thread(cluster.control, run_id, what)

    async def paused() -> bool:
        return await asyncio.to_thread(state) != "running"

    async with workers(url, folder):
        await controls(case, folder, ended, command, paused)


# ------------------------------------------------------------------------------ the property


@pytest.mark.timeout(60 + EXAMPLES * 60)  # pytest-timeout bounds all examples together
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # each example has its own run id and folders
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(case=cases())
def test_generated_workflows_end_the_same_in_every_mode(
    case: Case, pg_url: str, tmp_path: Path
) -> None:
    run_id = f"parity-{next(RUN)}"
    base = tmp_path / run_id
    results: dict[str, tuple[Any, ...]] = {}

    memory = MemoryStore()
    folder = base / "memory"
    folder.mkdir(parents=True)
    arun(embedded(memory, case, folder, run_id), timeout=90)
    results["memory"] = summary(memory, run_id)

    folder = base / "sqlite"
    folder.mkdir()
    sqlite = SQLiteStore(base / "db.sqlite")
    try:
        arun(embedded(sqlite, case, folder, run_id), timeout=90)
        results["sqlite"] = summary(sqlite, run_id)
    finally:
        sqlite.close()

    folder = base / "workers"
    folder.mkdir()
    pg = PostgresStore(pg_url)
    try:
        arun(on_workers(pg, pg_url, case, folder, run_id), timeout=90)
        results["workers"] = summary(pg, run_id)
    finally:
        pg.close()

    assert results["sqlite"] == results["memory"], case.notes
    assert results["workers"] == results["memory"], case.notes
