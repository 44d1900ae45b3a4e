"""Build and run workflows in Python. The builder produces the same plain data a YAML file holds
and validates it the same way, so a spec built here is identical to its YAML twin; `run_sync`
records the run where `reviewflow run` would, so `reviewflow status` shows it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .config import validate_spec
from .engine import Engine
from .executors.python import register_callable
from .notify.deliver import delivering
from .spec import WorkflowSpec
from .states import RunState
from .store import DEFAULT_DB, MemoryStore, Store, open_store

F = TypeVar("F", bound=Callable[..., Any])


def callable_ref(fn: Callable[..., Any]) -> str:
    """`module:qualname` of a function; closures and `__main__` functions are registered
    in-process so that they resolve here (a resume in another process needs importable ones)."""
    ref = f"{fn.__module__}:{fn.__qualname__}"
    if "<locals>" in fn.__qualname__ or fn.__module__ == "__main__":
        register_callable(ref, fn)
    return ref


class Workflow:
    """A workflow under construction.

    wf = Workflow("pr-review", max_concurrency=4, timeout="30m")
    wf.shell("lint", ["ruff", "check", "."], priority="high")

    @wf.task(needs=["lint"])
    def summary(ctx): ...

    run_id, state = run_sync(wf.build())  # recorded in .reviewflow/reviewflow.db
    print(run_id, state)

    Functions decorated in a script (`__main__`) or nested in another function run in the
    process that defined them; a resume from another process cannot import them and fails
    that task saying so. Put them in an importable module for runs that must survive it.
    """

    def __init__(self, name: str, **options: Any) -> None:
        self.name = name
        self.options = options
        self.tasks: dict[str, dict[str, Any]] = {}
        self.hooks: dict[str, dict[str, Any]] = {}

    def add(self, name: str, *, on_failure: bool = False, **fields: Any) -> Workflow:
        """Add a task given as YAML-like fields (`type`, `run`/`call`, `needs`, ...)."""
        target = self.hooks if on_failure else self.tasks
        if name in self.tasks or name in self.hooks:
            raise ValueError(f"duplicate task name {name!r}")
        target[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
        return self

    def shell(self, name: str, run: str | Sequence[str], **fields: Any) -> Workflow:
        """Add a `shell` task."""
        argv = run if isinstance(run, str) else list(run)
        return self.add(name, type="shell", run=argv, **fields)

    def python(self, name: str, call: str | Callable[..., Any], **fields: Any) -> Workflow:
        """Add a `python` task calling `module:function` or a function object."""
        ref = call if isinstance(call, str) else callable_ref(call)
        return self.add(name, type="python", call=ref, **fields)

    def task(self, fn: F | None = None, *, name: str | None = None, **fields: Any) -> Any:
        """Decorator adding a `python` task that calls the decorated function."""

        def decorate(func: F) -> F:
            self.python(name or func.__name__, func, **fields)
            return func

        return decorate(fn) if fn is not None else decorate

    def to_dict(self) -> dict[str, Any]:
        """The workflow as the plain data a YAML file would hold."""
        data: dict[str, Any] = {"name": self.name, **self.options, "tasks": dict(self.tasks)}
        if self.hooks:
            data["on_failure"] = dict(self.hooks)
        return data

    def build(self) -> WorkflowSpec:
        """Validate and return the spec (raises SpecError)."""
        return validate_spec(self.to_dict())


MEMORY = "memory"
"""`run_sync(..., store="memory")`: an ephemeral run, gone when the process ends."""


def _store_for(store: Store | str | Path | None) -> tuple[Store, bool]:
    """The store to run in and whether run_sync opened it (and so closes it)."""
    if store is None:
        store = os.environ.get("REVIEWFLOW_DB") or DEFAULT_DB
    if not isinstance(store, str | Path):
        return store, False
    if str(store) == MEMORY:
        return MemoryStore(), True
    return open_store(store), True


def run_sync(
    spec: WorkflowSpec,
    *,
    store: Store | str | Path | None = None,
    run_id: str | None = None,
    meta: dict[str, str] | None = None,
    **engine_options: Any,
) -> tuple[str, RunState]:
    """Run a workflow to the end from synchronous code; returns (run_id, final state).

    Like `reviewflow run`, the run is recorded by default in `$REVIEWFLOW_DB` or
    `.reviewflow/reviewflow.db`, so `reviewflow status`, `events` and `resume` find it after
    the script ends. `store` takes a Store, a SQLite path or a `postgresql://` URL, or
    `"memory"` for a run nobody needs to see afterwards. Nothing is printed: a library's
    caller decides what to show.
    """
    target, opened = _store_for(store)
    engine = Engine(target, **engine_options)

    async def main() -> tuple[str, RunState]:
        rid, _ = engine.submit(spec, run_id=run_id, meta=meta)
        return rid, await engine.execute(rid)

    try:
        with delivering(target):
            return asyncio.run(main())
    finally:
        if opened:
            target.close()
