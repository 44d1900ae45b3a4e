"""Retries with backoff, per-task timeouts (processes really stopped) and the run timeout."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reviewflow.states import RunState
from rfhelpers import (
    arun,
    process_gone,
    py,
    run_events,
    sh,
    task_events,
    tasks_by_name,
    workflow,
)

# Timing tolerances. Lower bounds are exact (minus EPS for the clock's granularity); upper
# bounds allow for a loaded CI machine.
EPS = 0.002
SLACK = 0.25


def _transitions(store, run_id: str, task: str) -> list[tuple[str | None, str]]:
    return [(e.from_state, e.to_state) for e in task_events(store, run_id, task)]


# ---------------------------------------------------------------------------------- retries


def test_python_task_failing_twice_then_succeeding(store, make_engine, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    spec = workflow(
        {
            "flaky": py(
                "flaky",
                params={"counter": str(counter), "fail_times": 2},
                retry={"max_retries": 3, "base_delay": "100ms", "multiplier": 2, "jitter": False},
            ),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED

    row = tasks_by_name(store, run_id)["flaky"]
    assert row.state == "succeeded"
    assert row.attempts == 3
    assert len(counter.read_text().splitlines()) == 3  # executed exactly three times
    errors = json.loads(row.errors)
    assert [e["attempt"] for e in errors] == [1, 2]
    assert all(e["error"].startswith("ValueError: flaky failure") for e in errors)
    assert row.error is None
    assert json.loads(row.result) == {"executions": 3}
    assert _transitions(store, run_id, "flaky") == [
        ("blocked", "ready"),
        ("ready", "running"),
        ("running", "retry_wait"),
        ("retry_wait", "ready"),
        ("ready", "running"),
        ("running", "retry_wait"),
        ("retry_wait", "ready"),
        ("ready", "running"),
        ("running", "succeeded"),
    ]
    evs = task_events(store, run_id, "flaky")
    assert [e.attempt for e in evs if e.to_state == "running"] == [1, 2, 3]

    # Backoff without jitter: 0.1 s after the first failure, 0.2 s after the second.
    starts = [e.at for e in evs if e.to_state == "running"]
    failures = [e.at for e in evs if e.to_state == "retry_wait"]
    for fail_at, next_start, delay in zip(failures, starts[1:], [0.1, 0.2], strict=True):
        assert delay - EPS <= next_start - fail_at < delay + SLACK
    assert starts[1] - starts[0] >= 0.1 - EPS
    assert starts[2] - starts[1] >= 0.2 - EPS
    waits = [e.detail for e in evs if e.to_state == "retry_wait"]
    assert "attempt 2 in 0.100s" in waits[0]
    assert "attempt 3 in 0.200s" in waits[1]


def test_jitter_scales_the_delay_down_to_half(store, make_engine, tmp_path: Path) -> None:
    """With jitter the delay is base * (0.5 + 0.5 * rand); the engine's `rand` source is
    pinned to 0 so the first retry waits exactly half of base_delay (0.2 s of 0.4 s)."""
    counter = tmp_path / "count"
    spec = workflow(
        {
            "flaky": py(
                "flaky",
                params={"counter": str(counter), "fail_times": 1},
                retry={"max_retries": 1, "base_delay": "400ms", "jitter": True},
            ),
        }
    )
    engine = make_engine(store, rand=lambda: 0.0)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    evs = task_events(store, run_id, "flaky")
    fail_at = next(e.at for e in evs if e.to_state == "retry_wait")
    restart = [e.at for e in evs if e.to_state == "running"][1]
    assert 0.2 - EPS <= restart - fail_at < 0.2 + 0.18  # well below the unjittered 0.4 s
    assert "attempt 2 in 0.200s" in next(e.detail for e in evs if e.to_state == "retry_wait")


def test_retries_exhausted_fail_the_task_and_run(store, make_engine, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    spec = workflow(
        {
            "flaky": py(
                "flaky",
                params={"counter": str(counter), "fail_times": 100},
                retry={"max_retries": 2, "base_delay": "10ms", "jitter": False},
            ),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    row = tasks_by_name(store, run_id)["flaky"]
    assert (row.state, row.attempts) == ("failed", 3)
    assert len(json.loads(row.errors)) == 3
    assert len(counter.read_text().splitlines()) == 3
    assert row.error == "ValueError: flaky failure 3"
    assert _transitions(store, run_id, "flaky")[-1] == ("running", "failed")
    run = store.get_run(run_id)
    assert run.state == "failed"
    assert "flaky" in run.error


@pytest.mark.parametrize(
    ("exc", "retried"),
    [("ValueError", True), ("CustomError", True), ("KeyError", False)],
)
def test_retry_on_retries_only_the_named_exceptions(
    store, make_engine, tmp_path: Path, exc: str, retried: bool
) -> None:
    counter = tmp_path / "count"
    spec = workflow(
        {
            "t": py(
                "raise_named",
                params={"counter": str(counter), "exc": exc},
                retry={
                    "max_retries": 2,
                    "base_delay": "10ms",
                    "jitter": False,
                    "retry_on": ["ValueError", "CustomError"],
                },
            ),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    row = tasks_by_name(store, run_id)["t"]
    expected = 3 if retried else 1
    assert row.state == "failed"
    assert row.attempts == expected
    assert len(counter.read_text().splitlines()) == expected
    assert row.error.startswith(f"{exc}: ")
    waits = [t for t in _transitions(store, run_id, "t") if t[1] == "retry_wait"]
    assert len(waits) == expected - 1


@pytest.mark.parametrize(("code", "retried"), [(3, True), (4, False)])
def test_shell_retry_on_exit_codes(
    store, make_engine, tmp_path: Path, code: int, retried: bool
) -> None:
    spec = workflow(
        {
            "t": sh(
                f"echo run >> count; exit {code}",
                cwd=str(tmp_path),
                retry={"max_retries": 2, "base_delay": "10ms", "retry_on_exit_codes": [3]},
            ),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    row = tasks_by_name(store, run_id)["t"]
    expected = 3 if retried else 1
    assert (row.state, row.attempts) == ("failed", expected)
    assert len((tmp_path / "count").read_text().splitlines()) == expected
    assert row.error.startswith(f"exit code {code}")


def test_shell_task_output_and_environment(store, make_engine, tmp_path: Path) -> None:
    spec = workflow(
        {
            "t": sh(
                'echo "$REVIEWFLOW_TASK $REVIEWFLOW_ATTEMPT $GREETING"', env={"GREETING": "hi"}
            ),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    result = json.loads(tasks_by_name(store, run_id)["t"].result)
    assert result["exit_code"] == 0
    assert result["output_tail"] == "t 1 hi\n"
    assert Path(result["log"]) == tmp_path / "runs" / run_id / "t.1.log"


# --------------------------------------------------------------------------------- timeouts


def _wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


@pytest.mark.parametrize("max_retries", [0, 1])
def test_shell_timeout_kills_the_whole_process_group(
    store, make_engine, tmp_path: Path, max_retries: int
) -> None:
    spec = workflow(
        {
            "slow": sh(
                'sleep 30 & echo $! > "child.$REVIEWFLOW_ATTEMPT.pid"; sleep 30',
                cwd=str(tmp_path),
                timeout="500ms",
                kill_grace="500ms",
                retry={"max_retries": max_retries, "base_delay": "50ms"},
            ),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED

    row = tasks_by_name(store, run_id)["slow"]
    assert (row.state, row.attempts) == ("failed", max_retries + 1)
    assert row.error == "timed out after 0.5s"
    per_attempt = [("ready", "running"), ("running", "timed_out")]
    expected = [("blocked", "ready")]
    for attempt in range(max_retries + 1):
        expected += per_attempt
        expected += (
            [("timed_out", "retry_wait"), ("retry_wait", "ready")]
            if (attempt < max_retries)
            else [("timed_out", "failed")]
        )
    assert _transitions(store, run_id, "slow") == expected
    evs = task_events(store, run_id, "slow")
    started = [e.at for e in evs if e.to_state == "running"]
    timed_out = [e.at for e in evs if e.to_state == "timed_out"]
    for s, t in zip(started, timed_out, strict=True):
        assert 0.5 - EPS <= t - s < 0.5 + 2.0  # stopped at the timeout, not at 30 s

    for attempt in range(1, max_retries + 2):
        pid = int((tmp_path / f"child.{attempt}.pid").read_text())
        assert _wait_gone(pid), f"grandchild {pid} of attempt {attempt} outlived its task"


def test_shell_timeout_kills_children_that_ignore_sigterm(
    store, make_engine, tmp_path: Path
) -> None:
    stubborn = "trap '' TERM; echo $$ > stubborn.pid; while :; do sleep 0.05; done"
    spec = workflow(
        {
            "slow": sh(
                f'sh -c "{stubborn}" & sleep 30',
                cwd=str(tmp_path),
                timeout="300ms",
                kill_grace="300ms",
                retry={"max_retries": 0},
            ),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    pid = int((tmp_path / "stubborn.pid").read_text())
    assert _wait_gone(pid), f"SIGTERM-ignoring grandchild {pid} survived the timeout"


def test_python_task_timeout(store, make_engine) -> None:
    spec = workflow(
        {
            "slow": py("asleep", params={"seconds": 10}, timeout="200ms", retry={"max_retries": 0}),
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    row = tasks_by_name(store, run_id)["slow"]
    assert (row.state, row.error) == ("failed", "timed out after 0.2s")
    assert _transitions(store, run_id, "slow")[-2:] == [
        ("running", "timed_out"),
        ("timed_out", "failed"),
    ]
    assert 0.2 - EPS <= row.finished_at - row.started_at < 0.2 + SLACK


def test_run_timeout_fails_the_run(store, make_engine, tmp_path: Path) -> None:
    spec = workflow(
        {
            "slow": sh("echo $$ > slow.pid; exec sleep 30", cwd=str(tmp_path), kill_grace="500ms"),
            "after": py("anoop", needs=["slow"]),
        },
        timeout="500ms",
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED

    run = store.get_run(run_id)
    assert run.state == "failed"
    assert "run timeout" in run.error
    assert 0.5 - EPS <= run.finished_at - run.started_at < 0.5 + 2.0
    rows = tasks_by_name(store, run_id)
    assert rows["slow"].state == "failed"
    assert "run timeout" in rows["slow"].error
    assert rows["after"].state == "cancelled"
    assert _transitions(store, run_id, "slow")[-2:] == [
        ("running", "timed_out"),
        ("timed_out", "failed"),
    ]
    assert run_events(store, run_id)[-1].to_state == "failed"
    assert _wait_gone(int((tmp_path / "slow.pid").read_text()))


def test_a_sync_task_that_hangs_past_its_timeout_does_not_keep_the_process_alive(tmp_path):
    """The timed-out thread is abandoned: `reviewflow run` returns and its process exits."""
    import subprocess
    import sys
    import time as _time

    (tmp_path / "hang.py").write_text("import time\ndef sleeper(ctx):\n    time.sleep(1000)\n")
    (tmp_path / "wf.yaml").write_text(
        "name: h\ntasks:\n  s: {call: 'hang:sleeper', timeout: 300ms, retry: {max_retries: 0}}\n"
    )
    exe = str(Path(sys.executable).parent / "reviewflow")
    started = _time.monotonic()
    proc = subprocess.run(
        [exe, "run", "wf.yaml", "--db", "h.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "timed out after 0.3s" in proc.stdout
    assert _time.monotonic() - started < 30  # not the 1000 s the thread would sleep


def test_a_missing_working_directory_is_named(store, make_engine, tmp_path):
    spec = workflow({"a": sh("pwd", cwd=str(tmp_path / "nope"), retry={"max_retries": 0})})
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.FAILED
    error = tasks_by_name(store, run_id)["a"].error
    assert error == f"working directory not found: {tmp_path / 'nope'}"
