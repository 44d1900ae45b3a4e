"""The plain progress view (no terminal): one line per event while the pace allows, then count
lines; failures and retries always get their own line. A fake clock drives the pace."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from reviewflow.progress import BURST, LINES_PER_SECOND, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain_progress(clock: Clock) -> Progress:
    progress = Progress(Console(file=io.StringIO()), clock=clock)
    assert progress.prints_lines  # not a terminal
    return progress


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Printed lines without their HH:MM:SS stamp."""
    return [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]


def test_a_small_run_prints_every_transition(capsys: pytest.CaptureFixture[str]) -> None:
    progress = plain_progress(Clock())
    progress.on_transition("r", None, "pending", "running", None, None)
    for name in ("a", "b", "c"):
        progress.on_transition("r", name, "ready", "running", 1, None)
        progress.on_transition("r", name, "running", "succeeded", 1, None)
    progress.on_transition("r", None, "running", "succeeded", None, None)
    assert lines(capsys) == [
        "run r: pending -> running",
        "a: running (attempt 1)",
        "a: succeeded",
        "b: running (attempt 1)",
        "b: succeeded",
        "c: running (attempt 1)",
        "c: succeeded",
        "run r: running -> succeeded",
    ]


def test_fast_transitions_fold_into_count_lines_but_failures_do_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    progress = plain_progress(clock)
    names = [f"t{i}" for i in range(1000)]
    for name in names:  # all at the same instant: far faster than a few lines a second
        progress.on_transition("r", name, "ready", "running", 1, None)
        progress.on_transition("r", name, "running", "succeeded", 1, None)
    progress.on_transition("r", "bad", "running", "retry_wait", 1, "exit code 3 (log: x/bad.1.log)")
    progress.on_transition("r", "bad", "running", "failed", 2, "exit code 3 (log: x/bad.2.log)")
    printed = lines(capsys)
    assert len(printed) == BURST + 2
    assert printed[-2:] == [
        "bad: retry_wait (attempt 1) - exit code 3 (log: x/bad.1.log)",
        "bad: failed (attempt 2) - exit code 3 (log: x/bad.2.log)",
    ]

    clock.now += 1 / LINES_PER_SECOND  # the view's next tick: one count line for the rest
    progress.on_transition("r", None, "running", "failed", None, "task 'bad' failed")
    assert lines(capsys) == [
        "1000/1001 succeeded, 1 failed",
        "run r: running -> failed (task 'bad' failed)",
    ]


def test_once_the_pace_slows_lines_come_one_by_one_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    progress = plain_progress(clock)
    for i in range(BURST + 5):
        progress.on_transition("r", f"t{i}", "running", "succeeded", 1, None)
    assert len(lines(capsys)) == BURST
    progress._fold_now()  # what `follow` does on its next tick
    assert lines(capsys) == [f"{BURST + 5}/{BURST + 5} succeeded"]
    clock.now += 60.0
    progress.on_transition("r", "late", "ready", "running", 1, None)
    assert lines(capsys) == ["late: running (attempt 1)"]


def test_a_disabled_view_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(Console(file=io.StringIO()), enabled=False)
    assert not progress.prints_lines
    progress.on_transition("r", "a", "running", "failed", 1, "boom")
    assert capsys.readouterr().out == ""


def test_count_lines_of_an_executing_run_follow_every_transition(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Counts are read from the live run once, then kept from the transitions."""
    import asyncio

    from reviewflow.engine import Engine
    from reviewflow.store import MemoryStore
    from rfhelpers import py, workflow

    progress = plain_progress(Clock())  # the clock stands still: past the burst, all folds
    engine = Engine(MemoryStore(), max_concurrency=4, observer=progress.on_transition)
    spec = workflow({f"t{i}": py("noop") for i in range(60)})

    async def main():
        run_id, _ = engine.submit(spec, run_id="r")
        task = asyncio.ensure_future(engine.execute(run_id))
        await progress.follow(engine, run_id, task)
        return await task

    assert str(asyncio.run(main())) == "succeeded"
    printed = lines(capsys)
    assert printed[-2:] == ["60/60 succeeded", "run r: running -> succeeded"]
    progress._fold_now()
    assert progress._counts() == {"succeeded": 60}
