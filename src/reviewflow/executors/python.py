"""The `python` task type: call `module:function`, async directly, sync in a worker thread."""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import json
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, TaskFailed
from .base import TaskContext

# asyncio is imported where it is used: validating a spec calls the task types' `validate`,
# and `reviewflow review` and `validate` must not load asyncio for that (docs/benchmarks.md).
if TYPE_CHECKING:
    import asyncio

    from ..spec import TaskSpec

_local_callables: dict[str, Callable[..., Any]] = {}
"""Callables registered in-process by the Python API (closures, `__main__` functions)."""


def register_callable(ref: str, fn: Callable[..., Any]) -> None:
    """Make `ref` resolve to `fn` in this process even when it cannot be imported."""
    _local_callables[ref] = fn
    _resolved.pop(ref, None)


_resolved: dict[str, tuple[Callable[..., Any], bool, bool]] = {}


def resolve(ref: str) -> tuple[Callable[..., Any], bool, bool]:
    """(function, is_async, takes_context) for `module:qualname`, cached."""
    hit = _resolved.get(ref)
    if hit is not None:
        return hit
    fn = _local_callables.get(ref)
    if fn is None:
        module_name, _, qualname = ref.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            if module_name == "__main__" or "<locals>" in qualname:
                raise TaskFailed(
                    f"cannot call {ref!r} here: only the script or function that submitted "
                    "the run can call it, another process cannot import it; to resume or run "
                    "it elsewhere, define it in an importable module (call: mymodule:function)",
                    retryable=False,
                ) from exc
            raise TaskFailed(f"cannot import {ref!r}: {exc}", retryable=False) from exc
        fn = obj
    if not callable(fn):
        raise TaskFailed(f"{ref!r} is not callable", retryable=False)
    try:
        takes_context = len(inspect.signature(fn).parameters) > 0
    except (TypeError, ValueError):
        takes_context = True
    hit = (fn, inspect.iscoroutinefunction(fn), takes_context)
    _resolved[ref] = hit
    return hit


class DaemonThreads:
    """Threads for sync tasks: reused when idle, a new one when none is, all daemons.

    Not `asyncio.to_thread`: the loop's default executor is joined when `asyncio.run` ends, and
    its threads at interpreter exit, so one sync task that hangs past its timeout would keep
    `reviewflow run` from ever exiting. A daemon thread is abandoned instead (its late result is
    dropped), and the pool grows rather than queue work behind it.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # that idle worker will take this job
        if spawn:
            threading.Thread(
                target=self._work, args=(job,), daemon=True, name="reviewflow-sync"
            ).start()
        else:
            self._jobs.put(job)

    def _work(self, job: Callable[[], None]) -> None:
        while True:
            job()
            with self._lock:
                self._idle += 1
            job = self._jobs.get()


_threads = DaemonThreads()


def in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run a sync function on a daemon thread, as a future of the running loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def job() -> None:
        try:
            outcome = (True, context.run(fn, *args))
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, *outcome)

    _threads.submit(job)
    return future


def _matches(exc: BaseException, names: list[str]) -> bool:
    return any(cls.__name__ in names or cls.__qualname__ in names for cls in type(exc).__mro__)


class PythonTaskType:
    """Runs a Python callable; its return value (JSON-serialisable) is the task's result."""

    name = "python"
    owns_timeout = False

    def validate(self, spec: TaskSpec) -> None:
        if not spec.call:
            raise SpecError("missing `call: module:function`", task=spec.name, field="call")
        if spec.run is not None:
            raise SpecError(
                "`run` is for shell tasks; a python task has `call`", task=spec.name, field="run"
            )
        if spec.inherit_env is not None:
            raise SpecError(
                "`inherit_env` is for shell tasks: a python task runs in the engine's process",
                task=spec.name,
                field="inherit_env",
            )
        module, sep, func = spec.call.partition(":")
        if not (module and sep and func):
            raise SpecError(
                f"bad call {spec.call!r}: use `module:function`", task=spec.name, field="call"
            )

    async def execute(self, ctx: TaskContext) -> Any:
        import asyncio

        assert ctx.spec.call is not None
        fn, is_async, takes_context = resolve(ctx.spec.call)
        args = (ctx,) if takes_context else ()
        try:
            if is_async:
                result = await fn(*args)
            else:
                result = await in_daemon_thread(fn, *args)
        except (TaskFailed, asyncio.CancelledError):
            raise
        except Exception as exc:
            retry_on = ctx.spec.retry.retry_on
            retryable = retry_on is None or _matches(exc, retry_on)
            raise TaskFailed(f"{type(exc).__name__}: {exc}", retryable=retryable) from exc
        if result is not None:
            try:
                json.dumps(result)
            except (TypeError, ValueError) as exc:
                raise TaskFailed(
                    f"result is not JSON-serialisable: {exc}", retryable=False
                ) from exc
        return result
