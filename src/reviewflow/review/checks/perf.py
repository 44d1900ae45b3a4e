"""The `performance` check: run a benchmark on the base and on the head and compare.

A benchmark number means nothing alone (machines differ, load varies), so the base commit is
measured on the same machine in the same minute: it is checked out into a temporary
`git worktree` (removed afterwards, also on failure or cancel) and the runs alternate base,
head, base, head... so drift hits both sides alike; the median of each side is compared.

Options:
    paths      which changed paths make the check run (default core/, engine/, database/,
               cache/, api/handlers/; the workflow builder uses the same list)
    command    required: the benchmark, an argv list or a string split like a shell would
               (it is never run by a shell); it runs in each tree's root
    repeat     runs per side, median taken (default 3)
    threshold  regression percent that fails the check (default 10)
    metric     regex whose first group captures the number to compare from stdout
               (`([0-9.]+) ops/s`); without it the wall time of the command is compared
    higher_is_better  default true with `metric` (a rate), false without (seconds)
    timeout    seconds per run (default 300)
    severity   of the regression finding (default "error")
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..change import EMPTY_TREE, Change, ChangeError, git
from ..findings import SEVERITIES, CheckResult, Finding, clean_message
from .base import CheckContext

DEFAULT_PATHS = ("core/", "engine/", "database/", "cache/", "api/handlers/")
DEFAULT_REPEAT = 3
DEFAULT_THRESHOLD = 10.0
DEFAULT_TIMEOUT = 300.0


class BenchmarkFailed(Exception):
    """One run of the benchmark failed (exit code, timeout, or no number in its output)."""


def critical_paths(change: Change, paths: Iterable[str] | None = None) -> list[str]:
    """Changed paths that make the benchmark worth running."""
    if paths is None:
        paths = DEFAULT_PATHS
    return change.matching([paths] if isinstance(paths, str) else list(paths))


async def performance(ctx: CheckContext) -> CheckResult:
    """Benchmark base and head alternately; a regression beyond `threshold` is a finding."""
    opts = ctx.options
    if not critical_paths(ctx.change, opts.get("paths")):
        return ctx.skip("no performance-critical paths changed")
    command = _command(opts.get("command"))
    repeat = int(opts.get("repeat", DEFAULT_REPEAT))
    if repeat < 1:
        raise ValueError("performance: option 'repeat' must be at least 1")
    threshold = float(opts.get("threshold", DEFAULT_THRESHOLD))
    timeout = float(opts.get("timeout", DEFAULT_TIMEOUT))
    pattern = opts.get("metric")
    metric = re.compile(pattern) if pattern else None
    if metric is not None and metric.groups < 1:
        raise ValueError("performance: option 'metric' needs a group capturing the number")
    higher_is_better = bool(opts.get("higher_is_better", metric is not None))
    severity = opts.get("severity", "error")
    if severity not in SEVERITIES:
        raise ValueError(f"performance: option 'severity' must be one of {', '.join(SEVERITIES)}")
    if ctx.change.base == EMPTY_TREE:
        return ctx.skip("no base commit to compare with")

    root = Path(ctx.root)
    tmp = Path(tempfile.mkdtemp(prefix="reviewflow-perf-"))
    base_tree = tmp / "base"
    try:
        added = await ctx.run_tool(
            [
                "git",
                "-c",
                "core.hooksPath=/dev/null",
                "-C",
                str(root),
                "worktree",
                "add",
                "--detach",
                str(base_tree),
                ctx.change.base,
            ],
            timeout=120,
        )
        if added.returncode != 0:
            raise RuntimeError(f"git worktree add failed: {added.stderr.strip()}")
        base_runs: list[float] = []
        head_runs: list[float] = []
        for _ in range(repeat):
            try:
                base_runs.append(await _measure(ctx, command, base_tree, metric, timeout))
            except BenchmarkFailed as exc:
                return ctx.skip(f"benchmark fails on base: {exc}")
            try:
                head_runs.append(await _measure(ctx, command, root, metric, timeout))
            except BenchmarkFailed as exc:
                finding = Finding(
                    check=ctx.check,
                    severity="error",
                    rule="benchmark-failed",
                    message=clean_message(f"benchmark fails on head: {exc}"),
                )
                return ctx.result(
                    [finding],
                    what="benchmark failed",
                    metrics={"base_runs": base_runs, "head_runs": head_runs},
                )
    finally:
        _remove_worktree(root, base_tree)
        shutil.rmtree(tmp, ignore_errors=True)

    import statistics  # not at import: the review's builder imports this module (start-up)

    base, head = statistics.median(base_runs), statistics.median(head_runs)
    change_percent = _percent(head - base, base)
    regression = (
        None
        if change_percent is None
        else (-change_percent if higher_is_better else change_percent)
    )
    metrics: dict[str, Any] = {
        "base": base,
        "head": head,
        "change_percent": change_percent,
        "regression_percent": regression,
        "threshold": threshold,
        "higher_is_better": higher_is_better,
        "unit": "value" if metric else "seconds",
        "base_runs": base_runs,
        "head_runs": head_runs,
    }
    shown = f"{_fmt(base, metric)} → {_fmt(head, metric)}"
    if regression is not None and regression > threshold:
        worse = "slower" if metric is None else "worse"
        message = (
            f"benchmark {regression:.1f}% {worse} than base ({shown}; threshold {threshold:g}%)"
        )
        finding = Finding(
            check=ctx.check, severity=severity, rule="perf-regression", message=message
        )
        return ctx.result([finding], what=f"benchmark: {shown}", metrics=metrics)
    delta = "n/a" if change_percent is None else f"{change_percent:+.1f}%"
    return CheckResult(check=ctx.check, summary=f"benchmark: {shown} ({delta})", metrics=metrics)


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        value = shlex.split(value)
    if (
        not value
        or not isinstance(value, list | tuple)
        or not all(isinstance(v, str | int | float) for v in value)
    ):
        raise ValueError("performance: option 'command' is required (an argv list or a string)")
    return [str(v) for v in value]


async def _measure(
    ctx: CheckContext,
    command: list[str],
    tree: Path,
    metric: re.Pattern[str] | None,
    timeout: float,
) -> float:
    """One run in `tree`: the captured number, or the wall time in seconds."""
    started = time.perf_counter()
    try:
        done = await ctx.run_tool(command, cwd=tree, env=_env(tree), timeout=timeout)
    except TimeoutError:
        raise BenchmarkFailed(f"no result within {timeout:g}s") from None
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise BenchmarkFailed(f"exit {done.returncode}: {' '.join(tail)}")
    if metric is None:
        return elapsed
    found = metric.search(done.stdout)
    if found is None:
        raise BenchmarkFailed(f"no match for {metric.pattern!r} in its output")
    try:
        return float(found.group(1))
    except ValueError:
        raise BenchmarkFailed(f"{found.group(1)!r} is not a number") from None


def _env(tree: Path) -> Mapping[str, str]:
    """Make `import yourpackage` load the tree being measured.

    An editable install points at the head's sources; without this the base run would
    import (and measure) the head's code.
    """
    paths = [str(tree / "src")] if (tree / "src").is_dir() else []
    paths.append(str(tree))
    existing = os.environ.get("PYTHONPATH")
    return {
        "PYTHONPATH": os.pathsep.join([*paths, *([existing] if existing else [])]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _remove_worktree(root: Path, tree: Path) -> None:
    """Synchronous on purpose: it runs in `finally`, also while the task is being cancelled."""
    try:
        git(root, "worktree", "remove", "--force", str(tree), check=False)
        if tree.exists():
            shutil.rmtree(tree, ignore_errors=True)
        git(root, "worktree", "prune", check=False)
    except ChangeError:
        pass


def _percent(delta: float, base: float) -> float | None:
    if base == 0:
        return 0.0 if delta == 0 else None
    return round(100.0 * delta / base, 2)


def _fmt(value: float, metric: re.Pattern[str] | None) -> str:
    if metric is None:
        return f"{value:.2f}s"
    return f"{value:,.0f}" if abs(value) >= 1e6 else f"{value:.6g}"


__all__ = ["DEFAULT_PATHS", "critical_paths", "performance"]
