"""What a check is given (CheckContext), how it runs a tool, and how it reports.

A check is a function `check(ctx: CheckContext) -> CheckResult | list[Finding]` (sync or
async). It runs real tools through `ctx.run_tool(argv)`: an argv list, never a shell, in its
own process group so a timeout or cancel stops the whole tool, output appended to the
attempt's log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import REVIEW_INSTALL_HINT, TaskFailed
from ...errors import ServiceUnreachable as ServiceUnreachable
from ...errors import ToolMissing as ToolMissing
from ...statedir import make_dirs
from ..change import Change
from ..findings import CheckResult, Finding

if TYPE_CHECKING:
    from ..cache import FileCache

INSTALL_HINT = REVIEW_INSTALL_HINT


@dataclass(slots=True)
class ToolResult:
    """A finished tool: its exit code and its output (decoded, replacement on bad bytes)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass(slots=True)
class CheckContext:
    """Everything one check may know about the review it is part of."""

    check: str
    """The check's name in the template (`lint`, or a plugin's name)."""
    root: Path
    """The repository's work tree: the head of the change."""
    change: Change
    options: Mapping[str, Any] = field(default_factory=dict)
    """The check's settings from the template (`paths`, `command`, `threshold`, ...)."""
    upstream: Mapping[str, CheckResult] = field(default_factory=dict)
    """Results of the checks this one runs after (`lint` sees `syntax`)."""
    log_path: Path | None = None
    on_process: Callable[[int], None] | None = None
    timeout: float | None = None
    """Default bound for each tool run: the check's timeout from the template, less a margin so
    the check, not the engine, reports it (and without a retry: a second try would take as long)."""
    tmp_dir: Path | None = None
    """TMPDIR of the tools: removed when the attempt ends, so a tool killed on a timeout (a test
    suite with its temporary databases) leaves nothing behind."""
    mask: Callable[[str], str] | None = None
    """Masks the change's secret values in what tools print, before it reaches the log."""
    file_cache: FileCache | None = None
    """Findings of files an earlier review checked with the same inputs (see `each_file`)."""
    cache: bool = True
    """False under `reviewflow review --no-cache` (or `cache.enabled: false`): nothing an
    earlier review stored is trusted, the tests check's coverage map included."""

    def files(self, *suffixes: str) -> list[str]:
        """Changed files present in the work tree, optionally with one of `suffixes`."""
        return self.change.paths(*suffixes)

    def python_module(self, module: str, tool: str | None = None) -> list[str]:
        """argv prefix to run an installed Python tool as `python -m module`.

        The tool is looked up in reviewflow's own environment, so what `pip install
        'reviewflow[review]'` installed is what runs.
        """
        if importlib.util.find_spec(module) is None:
            raise ToolMissing(tool or module)
        return [sys.executable, "-m", module]

    def executable(self, name: str, hint: str = INSTALL_HINT) -> str:
        """Absolute path of a program on PATH (next to our interpreter first)."""
        here = Path(sys.executable).parent / name
        if here.is_file() and os.access(here, os.X_OK):
            return str(here)
        found = shutil.which(name)
        if found is None:
            raise ToolMissing(name, hint)
        return found

    async def run_tool(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> ToolResult:
        """Run `argv` (no shell) in the repository and wait; cancellation kills its group."""
        import asyncio

        argv = [str(a) for a in argv]
        full_env = {**os.environ, **(env or {})}
        if self.tmp_dir is not None:
            make_dirs(self.tmp_dir)
            full_env.update(TMPDIR=str(self.tmp_dir), TEMP=str(self.tmp_dir), TMP=str(self.tmp_dir))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=str(cwd or self.root),
                env=full_env,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise ToolMissing(Path(argv[0]).name) from None
        if self.on_process is not None:
            self.on_process(proc.pid)
        limit = timeout if timeout is not None else self.timeout
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            if timeout is not None:  # the caller's own bound: the caller decides
                raise
            raise TaskFailed(
                f"{Path(argv[0]).name} did not finish within {_seconds(limit)} "
                f"(the timeout of check {self.check!r}: raise it in the template)",
                retryable=False,
            ) from None
        except BaseException:
            _kill_group(proc.pid)
            await proc.wait()
            raise
        result = ToolResult(
            argv,
            proc.returncode or 0,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
        )
        self._log(result)
        return result

    def _log(self, result: ToolResult) -> None:
        if self.log_path is None:
            return
        try:
            make_dirs(self.log_path.parent)
            text = (
                f"$ {' '.join(result.argv)}\n{result.stdout}{result.stderr}"
                f"[exit {result.returncode}]\n"
            )
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(self.mask(text) if self.mask is not None else text)
        except OSError:
            pass

    async def each_file(
        self,
        files: Sequence[str],
        run: Callable[[list[str]], Awaitable[tuple[list[Finding], dict[str, Any]]]],
    ) -> tuple[list[Finding], dict[str, Any]]:
        """`run(files)`: its findings and per-file data (`{path: {...}}`), reusing what an
        earlier review found in each file whose inputs did not change; only the other files
        are given to `run`. For checks whose findings in a file depend on that file alone."""
        import asyncio

        cache = self.file_cache
        if cache is None:
            return await run(list(files))
        found, todo = await asyncio.to_thread(cache.lookup, files)
        findings: list[Finding] = []
        data: dict[str, Any] = {}
        if todo:
            findings, data = await run(todo)
            await asyncio.to_thread(cache.store_files, todo, findings, data)
        for path, entry in found.items():
            findings += [Finding.model_validate(f) for f in entry["findings"]]
            if entry.get("data"):
                data[path] = entry["data"]
        cache.reused += list(found)
        cache.checked += todo
        order = {path: i for i, path in enumerate(files)}
        findings.sort(key=lambda f: order.get(f.file or "", len(order)))
        if found:
            self._log_line(f"reused the findings of {len(found)} unchanged file(s)\n")
        return findings, data

    def _log_line(self, text: str) -> None:
        if self.log_path is None:
            return
        try:
            make_dirs(self.log_path.parent)
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            pass

    def result(self, findings: Sequence[Any], *, what: str = "", **extra: Any) -> CheckResult:
        """A CheckResult for this check from findings (status from their severities)."""
        return CheckResult.from_findings(self.check, findings, what=what, **extra)

    def skip(self, reason: str) -> CheckResult:
        return CheckResult.skipped(self.check, reason)


def _seconds(limit: float | None) -> str:
    value = float(limit or 0)
    return f"{value / 60:g}m" if value >= 120 else f"{value:g}s"


def tool_bound(task_timeout: float | None) -> float | None:
    """The tools' bound inside a check: a little under the task's own timeout."""
    if not task_timeout:
        return None
    return max(task_timeout - min(10.0, task_timeout * 0.05), task_timeout * 0.9)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


CheckFunction = Callable[[CheckContext], Any]
