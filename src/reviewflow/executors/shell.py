"""The `shell` task type: an argv run in its own process group, never through a shell.

On timeout or cancel the whole group gets SIGTERM, then SIGKILL after `kill_grace`, so that
grandchildren (a test runner's workers, say) do not outlive the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, TaskFailed
from .base import TaskContext

if TYPE_CHECKING:
    from ..spec import TaskSpec

OUTPUT_TAIL_BYTES = 4096


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False once no process of the group is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
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
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[2]) == pgid and not (live_only and fields[0] in (b"Z", b"X")):
                pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _group_alive(pgid: int) -> bool:
    pids = group_pids(pgid, live_only=True)
    return _signal_group(pgid, 0) if pids is None else bool(pids)


async def stop_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL what is left.

    Exited members not yet reaped (zombies) do not count as left: where nothing reaps orphans
    promptly (a container's PID 1), waiting for them would always cost the whole grace period.
    """
    pgid = proc.pid
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pgid):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=0.05)
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

    def validate(self, spec: TaskSpec) -> None:
        if not spec.run:
            raise SpecError("missing `run: [command, args...]`", task=spec.name, field="run")

    async def execute(self, ctx: TaskContext) -> Any:
        spec = ctx.spec
        assert spec.run
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = ctx.log_path
        env = {
            **os.environ,
            **spec.env,
            "REVIEWFLOW_RUN_ID": ctx.run_id,
            "REVIEWFLOW_TASK": ctx.task,
            "REVIEWFLOW_ATTEMPT": str(ctx.attempt),
        }
        started = time.monotonic()
        with open(log_path, "wb") as log:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *spec.run,
                    cwd=spec.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise TaskFailed(f"command not found: {spec.run[0]}", retryable=False) from None
            except (PermissionError, NotADirectoryError, OSError) as exc:
                raise TaskFailed(f"cannot start {spec.run[0]}: {exc}", retryable=False) from None
            if ctx.on_process is not None:
                ctx.on_process(proc.pid)
            try:
                code = await proc.wait()
            except BaseException:
                await asyncio.shield(stop_group(proc, spec.kill_grace))
                raise
            finally:
                # Whatever the command left behind in its group goes with it.
                _signal_group(proc.pid, signal.SIGKILL)
        result = {
            "exit_code": code,
            "duration_s": round(time.monotonic() - started, 3),
            "log": str(log_path),
            "output_tail": _tail(log_path),
        }
        if code != 0:
            codes = spec.retry.retry_on_exit_codes
            retryable = codes is None or code in codes
            detail = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
            raise TaskFailed(f"{detail} (log: {log_path})", retryable=retryable, exit_code=code)
        return result
