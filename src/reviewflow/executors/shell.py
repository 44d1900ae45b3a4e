"""The `shell` task type: an argv run in its own process group, never through a shell.

On timeout or cancel the whole group gets SIGTERM, then SIGKILL after `kill_grace`, so that
grandchildren (a test runner's workers, say) do not outlive the task.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, TaskFailed
from ..statedir import make_dirs
from .base import TaskContext

# asyncio is imported where it is used: validating a spec calls the task types' `validate`,
# and `reviewflow review` and `validate` must not load asyncio for that (docs/benchmarks.md).
if TYPE_CHECKING:
    import asyncio

    from ..spec import TaskSpec

OUTPUT_TAIL_BYTES = 4096
RSS_SAMPLE_S = 0.25


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False once no process of the group is left."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_pids(pgid: int, *, live_only: bool = False) -> list[int] | None:
    """Pids of the processes in group `pgid` (zombies left out with `live_only`); None where
    /proc cannot be read (not Linux)."""
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    pids = []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid and not (live_only and fields[0] in (b"Z", b"X")):
                pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _group_alive(pgid: int) -> bool:
    pids = group_pids(pgid, live_only=True)
    return _signal_group(pgid, 0) if pids is None else bool(pids)


def inherited(patterns: list[str] | None) -> dict[str, str]:
    """The part of this process's environment a task inherits: all of it, or the variables
    whose names match one of `patterns` (a task's `inherit_env`)."""
    if patterns is None:
        return dict(os.environ)
    return {k: v for k, v in os.environ.items() if any(fnmatchcase(k, p) for p in patterns)}


class Child:
    """A started process whose exit is awaited as (exit code, rusage).

    It is reaped with `os.wait4` in a thread of its own (as asyncio's default child watcher does
    with waitpid), which also yields the CPU time and peak RSS of the process and of the
    descendants it waited for: the task's resource use.
    """

    def __init__(self, proc: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.peak_rss_kib: int | None = None
        self.exited: asyncio.Future[tuple[int, resource.struct_rusage | None]] = (
            loop.create_future()
        )
        threading.Thread(target=self._reap, args=(loop,), daemon=True).start()

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            _, status, usage = os.wait4(self.pid, 0)
            outcome: tuple[int, resource.struct_rusage | None] = (
                os.waitstatus_to_exitcode(status),
                usage,
            )
        except ChildProcessError:
            outcome = (-signal.SIGKILL, None)
        self.proc.returncode = outcome[0]  # reaped here: Popen must not look for it again
        with contextlib.suppress(RuntimeError):  # the loop may be gone at interpreter exit
            loop.call_soon_threadsafe(self._set, outcome)

    def _set(self, outcome: tuple[int, resource.struct_rusage | None]) -> None:
        if not self.exited.done():
            self.exited.set_result(outcome)

    async def wait(self) -> tuple[int, resource.struct_rusage | None]:
        """Exit code and rusage; cancelling the caller does not cancel the reaping."""
        import asyncio

        return await asyncio.shield(self.exited)

    async def wait_sampling(self) -> tuple[int, resource.struct_rusage | None]:
        """`wait`, sampling the process's peak RSS (VmHWM) meanwhile.

        rusage's ru_maxrss cannot be used for memory: it counts the image the child had before
        exec, i.e. the engine's own. VmHWM of the exec'd process is exact for that process
        (not for its children) and only grows, so the last sample before exit is its peak,
        give or take what it allocated in the last `RSS_SAMPLE_S`.
        """
        import asyncio

        delay = 0.02
        while not self.exited.done():
            self._sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), timeout=delay)
            delay = min(delay * 2, RSS_SAMPLE_S)
        return await self.wait()

    def _sample(self) -> None:
        try:
            with open(f"/proc/{self.pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:"):
                        kib = int(line.split()[1])
                        self.peak_rss_kib = max(self.peak_rss_kib or 0, kib)
                        return
        except (OSError, ValueError, IndexError):
            return


async def stop_group(proc: Child, grace: float) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL what is left.

    Exited members not yet reaped (zombies) do not count as left: where nothing reaps orphans
    promptly (a container's PID 1), waiting for them would always cost the whole grace period.
    """
    import asyncio

    pgid = proc.pid
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pgid):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout=0.05)
    _signal_group(pgid, signal.SIGKILL)
    await proc.wait()


def _tail(path: os.PathLike[str] | str) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - OUTPUT_TAIL_BYTES))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def kill_orphans(pgid: int, run_id: str, task: str) -> int:
    """SIGKILL what is left of a dead attempt's process group; returns how many were found.

    Only processes whose environment names this run and task are touched, so a reused process
    group id never hits an unrelated process. Linux only (reads /proc); elsewhere a no-op.
    """
    marker_run = f"REVIEWFLOW_RUN_ID={run_id}".encode()
    marker_task = f"REVIEWFLOW_TASK={task}".encode()
    found = 0
    for pid in group_pids(pgid) or []:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if marker_run in env and marker_task in env:
            found += 1
    if found:
        _signal_group(pgid, signal.SIGKILL)
    return found


class ShellTaskType:
    """Runs `run` (an argv list) with `cwd` and `env`; exit code 0 is success."""

    name = "shell"
    owns_timeout = False

    def validate(self, spec: TaskSpec) -> None:
        if not spec.run:
            raise SpecError("missing `run: [command, args...]`", task=spec.name, field="run")
        if spec.call is not None:
            raise SpecError(
                "`call` is for python tasks; a shell task has `run`", task=spec.name, field="call"
            )

    async def execute(self, ctx: TaskContext) -> Any:
        import asyncio

        spec = ctx.spec
        assert spec.run
        make_dirs(ctx.run_dir)
        log_path = ctx.log_path
        env = {
            **inherited(spec.inherit_env),
            **spec.env,
            "REVIEWFLOW_RUN_ID": ctx.run_id,
            "REVIEWFLOW_TASK": ctx.task,
            "REVIEWFLOW_ATTEMPT": str(ctx.attempt),
        }
        started = time.monotonic()
        with open(log_path, "wb") as log:
            try:
                proc = Child(
                    subprocess.Popen(
                        spec.run,
                        cwd=spec.cwd,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    ),
                    asyncio.get_running_loop(),
                )
            except FileNotFoundError:
                if spec.cwd and not os.path.isdir(spec.cwd):
                    raise TaskFailed(
                        f"working directory not found: {spec.cwd}", retryable=False
                    ) from None
                raise TaskFailed(f"command not found: {spec.run[0]}", retryable=False) from None
            except (PermissionError, NotADirectoryError, OSError) as exc:
                raise TaskFailed(f"cannot start {spec.run[0]}: {exc}", retryable=False) from None
            if ctx.on_process is not None:
                ctx.on_process(proc.pid)
            try:
                code, usage = await proc.wait_sampling()
            except BaseException:
                await asyncio.shield(stop_group(proc, spec.kill_grace))
                raise
            finally:
                # Whatever the command left behind in its group goes with it.
                _signal_group(proc.pid, signal.SIGKILL)
        result: dict[str, Any] = {
            "exit_code": code,
            "duration_s": round(time.monotonic() - started, 3),
            "log": str(log_path),
            "output_tail": _tail(log_path),
        }
        if usage is not None:
            result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
        if proc.peak_rss_kib is not None:
            result["max_rss_kib"] = proc.peak_rss_kib
        if code != 0:
            codes = spec.retry.retry_on_exit_codes
            retryable = codes is None or code in codes
            detail = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
            raise TaskFailed(f"{detail} (log: {log_path})", retryable=retryable, exit_code=code)
        return result
