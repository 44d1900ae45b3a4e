"""How a run reads on a screen and in a CI log (reviewflow.terminal): ids, names and paths are
never cut ('…'), whatever the width; piped output is whole, aligned lines; a cancelled run shows
its cancelled tasks, not a success rate; a big run ends with its failures and slowest tasks, not
a row per task; text that looks like rich markup is shown as written."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from rich.console import Console

from reviewflow.constants import SUMMARY_ABOVE
from reviewflow.store import EventRecord
from reviewflow.terminal import MAX_PROBLEMS, SLOWEST, event_table, run_list, run_summary

LONG = "nightly-build-of-the-monorepo-for-release-candidate-2026-12-01T00-00-00Z-" + "x" * 40


def _console(*, terminal: bool, width: int = 80) -> Console:
    """A console as the CLI makes one (markup off), writing to a buffer."""
    return Console(
        file=io.StringIO(),
        force_terminal=terminal,
        width=width,
        color_system=None,
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


def _text(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _task(name: str, state: str = "succeeded", duration: float | None = 1.0, **extra: Any) -> dict:
    return {"name": name, "state": state, "attempts": 1, "duration_s": duration, **extra}


def _doc(tasks: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    metrics = {
        "duration_s": 12.5,
        "tasks": len(tasks),
        "tasks_by_state": counts,
        "attempts": len(tasks),
        "retries": 0,
        "lost_attempts": 0,
        "wait_time_s": {"mean": 0.0125, "max": 0.02},
    }
    return {
        "run_id": "r1",
        "workflow": "wf",
        "state": "succeeded",
        "tasks": tasks,
        "metrics": metrics,
        **fields,
    }


def test_long_ids_and_paths_are_whole_on_a_narrow_terminal_and_in_a_pipe() -> None:
    log = f".reviewflow/runs/{LONG}/a.1.log"
    doc = _doc([_task("a", "failed", error=f"exit 3, see {log}")], run_id=LONG, state="failed")
    narrow = _console(terminal=True, width=60)
    run_summary(narrow, doc)
    lines = _text(narrow).splitlines()
    assert lines[0].startswith(f"{LONG} failed")  # the header is not a table: one line
    note = lines[1].index("note")
    assert "".join(line[note:].strip() for line in lines[3:-1]) == log  # under "exit 3, see"
    assert "…" not in _text(narrow)  # the note folds down its column
    piped = _text(_piped_summary(doc))
    assert LONG in piped.splitlines()[0] and log in piped  # each on one line
    assert all(line == line.rstrip() for line in piped.splitlines())
    console = _console(terminal=False, width=60)
    run_list(
        console,
        [{"run_id": LONG, "workflow": "wf", "state": "failed", "created_at": 0.0, "meta": {}}],
    )
    assert _text(console).splitlines()[1].split() == [LONG, "wf", "failed", "-"]


def _piped_summary(doc: dict[str, Any]) -> Console:
    console = _console(terminal=False, width=60)
    run_summary(console, doc)
    return console


def test_piped_tables_are_aligned_columns() -> None:
    doc = _doc([_task("a"), _task("much-longer-name", "failed", 2.0, error="exit 3")])
    lines = _text(_piped_summary(doc)).splitlines()
    header = next(line for line in lines if line.startswith("task"))
    rows = [line for line in lines if line.startswith(("a ", "much-longer-name"))]
    assert header.split() == ["task", "state", "attempts", "duration", "note"]
    column = header.index("state")
    assert [row[column:].split()[0] for row in rows] == ["succeeded", "failed"]
    assert rows[1].index("2.00s") == header.index("duration")
    assert rows[1].index("exit 3") == header.index("note")


def test_a_cancelled_run_shows_its_cancelled_tasks_and_no_rate() -> None:
    tasks = [_task("a"), _task("b", "cancelled", None), _task("c", "cancelled", None)]
    doc = _doc(tasks, state="cancelled")
    doc["metrics"]["lost_attempts"] = 1
    shown = _text(_piped_summary(doc))
    assert "tasks 3 (succeeded 1, cancelled 2)  attempts 3  retries 0  lost 1" in shown
    assert "mean wait 12.5ms" in shown and "%" not in shown


def test_a_big_run_is_summarised_and_lists_every_task_when_asked() -> None:
    n = SUMMARY_ABOVE + 30
    tasks = [_task(f"t{i:03d}", duration=float(i)) for i in range(n)]
    failed = MAX_PROBLEMS + 3
    for t in tasks[:failed]:
        t.update(state="failed", error="exit 1")
    doc = _doc(tasks, state="failed")
    shown = _text(_piped_summary(doc))
    assert f"failures ({failed}):" in shown and "... and 3 more" in shown
    slowest = shown[shown.index(f"slowest {SLOWEST}:") :].splitlines()[2 : 2 + SLOWEST]
    assert [line.split()[0] for line in slowest] == [f"t{i:03d}" for i in range(n - 1, n - 11, -1)]
    assert f"{n} tasks: `reviewflow status r1 --all` lists every one" in shown
    assert "t040" not in shown  # neither failed nor among the slowest: no row
    console = _console(terminal=False)
    run_summary(console, doc, every_task=True)
    every = _text(console)
    assert all(f"t{i:03d} " in every for i in range(n)) and "slowest" not in every


def test_text_that_looks_like_markup_is_shown_as_written() -> None:
    names = ["[bold]x[/]", "[/x]", "[red]"]
    doc = _doc([_task(n, "failed", error="[/] is not a tag") for n in names], meta={"k": "[b]"})
    doc["error"] = "task [red] failed"
    events = [EventRecord(1, "r1", "[bold]x[/]", "ready", "running", 1, 0.0, "[i]detail")]
    for terminal in (True, False):
        console = _console(terminal=terminal, width=120)
        run_summary(console, doc)
        event_table(console, events)
        shown = _text(console)
        assert all(n in shown for n in names)
        assert "meta: k=[b]" in shown and "error: task [red] failed" in shown
        assert "[i]detail" in shown and "[/] is not a tag" in shown


def test_events_show_the_run_s_own_and_an_empty_list_says_so() -> None:
    at = datetime(2026, 12, 1, 10, 20, 30, 250000).timestamp()
    console = _console(terminal=False)
    event_table(console, [EventRecord(1, "r1", None, "pending", "running", None, at, None)])
    run_list(console, [])
    lines = _text(console).splitlines()
    assert lines[1].split() == ["10:20:30.250", "(run)", "pending", "running"]
    assert lines[2] == "no runs yet"


def test_a_run_list_wider_than_the_terminal_folds_its_ids_and_keeps_every_column() -> None:
    rid = "r" * 70
    console = _console(terminal=True, width=80)
    created = 1_764_000_000.0
    run_list(
        console,
        [
            {
                "run_id": rid,
                "workflow": "nightly",
                "state": "succeeded",
                "created_at": created,
                "meta": {"pr": "42"},
            },
            {
                "run_id": "short",
                "workflow": "wf",
                "state": "failed",
                "created_at": created,
                "meta": {},
            },
        ],
    )
    text = _text(console)
    lines = text.splitlines()
    assert lines[0].split() == ["run", "workflow", "state", "created", "meta"]
    assert "…" not in text
    run_width = lines[0].index("workflow")
    # The id folds down its column, whole: its pieces add up to it.
    pieces = [line[:run_width].strip() for line in lines[1:] if line.startswith("r")]
    assert "".join(pieces) == rid
    assert "succeeded" in text and "failed" in text and "pr=42" in text
    assert all(len(line) <= 80 for line in lines)
