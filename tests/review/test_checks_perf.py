"""The `performance` check on real repositories: real benchmarks on a real base worktree.

The benchmark reads its number from core/work.py, so the head can be made deterministically
"slower" than the base; what matters is that the base run really measures the base commit, that
the temporary worktree never outlives the check, and that nothing from the repository reaches a
shell.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from gitrepo import branch_with, git, make_repo

from reviewflow.review.change import Change, collect_change
from reviewflow.review.checks.base import CheckContext
from reviewflow.review.checks.perf import critical_paths, performance
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

BENCH = "from core.work import RATE\n\nprint(f'speed: {RATE} ops/s')\n"
SLEEP_BENCH = "import time\n\nfrom core.work import DELAY\n\ntime.sleep(DELAY)\n"
RATE_CMD = [sys.executable, "bench.py"]
METRIC = r"([0-9.]+) ops/s"


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The check's temporary folders go here, so a test can see that none is left."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def run(root: Path, change: Change, **options) -> CheckResult:
    ctx = CheckContext(check="performance", root=root, change=change, options=options)
    return asyncio.run(performance(ctx))


def rate_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"core/work.py": "RATE = 100\n", "bench.py": BENCH})


def worktrees(root: Path) -> list[str]:
    listing = git(root, "worktree", "list", "--porcelain").splitlines()
    return [line.split(" ", 1)[1] for line in listing if line.startswith("worktree ")]


def assert_clean(root: Path, private_tmp: Path) -> None:
    assert worktrees(root) == [str(root)]
    assert list(private_tmp.iterdir()) == []


def test_a_slower_head_is_a_regression(tmp_path: Path, private_tmp: Path) -> None:
    root = rate_repo(tmp_path)
    change = branch_with(root, {"core/work.py": "RATE = 50\n"})
    result = run(root, change, command=RATE_CMD, metric=METRIC)
    assert result.status == "failed"
    assert result.metrics["base"] == 100.0 and result.metrics["head"] == 50.0
    assert result.metrics["change_percent"] == -50.0
    assert result.metrics["regression_percent"] == 50.0
    assert result.metrics["base_runs"] == [100.0] * 3
    [finding] = result.findings
    assert (finding.rule, finding.severity, finding.file) == ("perf-regression", "error", None)
    assert finding.message == "benchmark 50.0% worse than base (100 → 50; threshold 10%)"
    assert_clean(root, private_tmp)


def test_no_regression_passes(tmp_path: Path, private_tmp: Path) -> None:
    root = rate_repo(tmp_path)
    change = branch_with(root, {"core/work.py": "RATE = 95  # a little slower\n"})
    result = run(root, change, command=RATE_CMD, metric=METRIC, repeat=1)
    assert result.status == "passed" and result.findings == []
    assert result.summary == "benchmark: 100 → 95 (-5.0%)"
    assert result.metrics["regression_percent"] == 5.0
    # A tighter threshold and a milder severity.
    result = run(
        root, change, command=RATE_CMD, metric=METRIC, repeat=1, threshold=2, severity="warning"
    )
    assert result.status == "passed"
    assert [f.severity for f in result.findings] == ["warning"]
    assert_clean(root, private_tmp)


def test_lower_is_better_metric(tmp_path: Path) -> None:
    root = rate_repo(tmp_path)
    change = branch_with(root, {"core/work.py": "RATE = 50\n"})
    # Read as a latency, 100 → 50 is an improvement.
    result = run(root, change, command=RATE_CMD, metric=METRIC, higher_is_better=False, repeat=1)
    assert result.status == "passed" and result.metrics["regression_percent"] == -50.0


def test_wall_time_mode(tmp_path: Path, private_tmp: Path) -> None:
    root = make_repo(tmp_path / "repo", {"core/work.py": "DELAY = 0.0\n", "bench.py": SLEEP_BENCH})
    change = branch_with(root, {"core/work.py": "DELAY = 0.5\n"})
    # A string command is split like a shell would, and never run by one.
    command = f"{shlex.quote(sys.executable)} bench.py"
    result = run(root, change, command=command)
    assert result.status == "failed"
    assert result.metrics["unit"] == "seconds" and result.metrics["higher_is_better"] is False
    assert result.metrics["head"] - result.metrics["base"] >= 0.45
    [finding] = result.findings
    assert finding.rule == "perf-regression"
    assert finding.message.startswith("benchmark ") and "% slower than base (" in finding.message
    assert "s → " in finding.message and finding.message.endswith("s; threshold 10%)")
    assert_clean(root, private_tmp)


def test_benchmark_failing_on_base_skips(tmp_path: Path, private_tmp: Path) -> None:
    root = make_repo(tmp_path / "repo", {"core/work.py": "RATE = 100\n"})
    change = branch_with(root, {"core/work.py": "RATE = 50\n", "bench.py": BENCH})
    result = run(root, change, command=RATE_CMD, metric=METRIC)
    assert result.status == "skipped"
    assert result.summary.startswith("skipped: benchmark fails on base: exit 2")
    assert_clean(root, private_tmp)


def test_benchmark_failing_on_head_is_a_finding(tmp_path: Path, private_tmp: Path) -> None:
    root = rate_repo(tmp_path)
    change = branch_with(root, {"core/work.py": "raise SystemExit('work is broken')\n"})
    result = run(root, change, command=RATE_CMD, metric=METRIC)
    assert result.status == "failed"
    [finding] = result.findings
    assert finding.rule == "benchmark-failed" and finding.severity == "error"
    assert finding.message == "benchmark fails on head: exit 1: work is broken"
    assert_clean(root, private_tmp)

    change = branch_with(root, {"core/work.py": "RATE = 'fast'\n"}, name="other")
    [finding] = run(root, change, command=RATE_CMD, metric=METRIC).findings
    assert (
        finding.message == "benchmark fails on head: no match for '([0-9.]+) ops/s' in its output"
    )


def test_timeouts_count_as_failures(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"core/work.py": "DELAY = 0.0\n", "bench.py": SLEEP_BENCH})
    change = branch_with(root, {"core/work.py": "DELAY = 30\n"})
    result = run(root, change, command=[sys.executable, "bench.py"], timeout=1, repeat=1)
    assert [f.message for f in result.findings] == ["benchmark fails on head: no result within 1s"]


def test_cancel_stops_the_benchmark_and_removes_the_worktree(
    tmp_path: Path, private_tmp: Path
) -> None:
    root = make_repo(tmp_path / "repo", {"core/work.py": "DELAY = 60\n", "bench.py": SLEEP_BENCH})
    change = branch_with(root, {"core/work.py": "DELAY = 61\n"})
    pids: list[int] = []

    async def scenario() -> None:
        started = asyncio.Event()

        def on_process(pid: int) -> None:
            pids.append(pid)
            if len(pids) == 2:  # git worktree add, then the benchmark
                started.set()

        ctx = CheckContext(
            check="performance",
            root=root,
            change=change,
            on_process=on_process,
            options={"command": [sys.executable, "bench.py"]},
        )
        task = asyncio.create_task(performance(ctx))
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pids[1], 0)
    assert_clean(root, private_tmp)


def test_hostile_file_names_and_commands_never_reach_a_shell(
    tmp_path: Path, private_tmp: Path
) -> None:
    root = rate_repo(tmp_path)
    change = branch_with(
        root,
        {
            "core/$(touch pwned).py": "import os\nos.system('touch x')\n",
            "core/-rf.py": "x = 1\n",
            "core/work.py": "RATE = 100 \n",
        },
    )
    command = f"{shlex.quote(sys.executable)} bench.py ; touch pwned2 $(touch pwned3)"
    result = run(root, change, command=command, metric=METRIC, repeat=1)
    assert result.status == "passed"
    for name in ("pwned", "pwned2", "pwned3", "x", "core/x"):
        assert not (root / name).exists()
    assert_clean(root, private_tmp)


def test_skips_without_critical_paths_or_base(tmp_path: Path) -> None:
    root = rate_repo(tmp_path)
    assert (
        run(root, collect_change(root), command=RATE_CMD).summary
        == "skipped: no base commit to compare with"
    )
    change = branch_with(root, {"README.md": "# perf\n"})
    assert critical_paths(change) == []
    result = run(root, change, command=RATE_CMD)
    assert result.summary == "skipped: no performance-critical paths changed"
    # The option widens what counts as critical.
    assert critical_paths(change, ["README.md"]) == ["README.md"]


def test_bad_options_are_errors(tmp_path: Path) -> None:
    root = rate_repo(tmp_path)
    change = branch_with(root, {"core/work.py": "RATE = 1\n"})
    with pytest.raises(ValueError, match="'command' is required"):
        run(root, change)
    with pytest.raises(ValueError, match="group"):
        run(root, change, command=RATE_CMD, metric="ops/s")
    with pytest.raises(ValueError, match="repeat"):
        run(root, change, command=RATE_CMD, repeat=0)
