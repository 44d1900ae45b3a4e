"""Terminal renderings (rich) of status documents and events.

Ids, names and paths are never cut: their columns fold on a terminal, and the CLI gives rich a
console without a width limit when the output is not a terminal. A run of more than
`SUMMARY_ABOVE` tasks is summarised (counts, failures, slowest tasks) instead of one row per task.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .constants import SUMMARY_ABOVE as SUMMARY_ABOVE

if TYPE_CHECKING:
    from .store import EventRecord

STATE_COLORS = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "magenta",
    "running": "yellow",
    "retry_wait": "dark_orange",
    "ready": "cyan",
    "blocked": "dim",
    "skipped": "dim",
    "paused": "blue",
    "pending": "dim",
}
STATE_ORDER = (
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "skipped",
    "running",
    "retry_wait",
    "ready",
    "blocked",
    "paused",
    "pending",
)
"""The order counts by state are shown in: outcomes first, then work still to do."""
"""Runs with more tasks than this get a summary instead of a row per task."""
SLOWEST = 10
MAX_PROBLEMS = 20


def _time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _state(state: str) -> Text:
    return Text(state, style=STATE_COLORS.get(state, ""))


FOLD_MIN = 20
"""Narrowest a table column gets on a narrow terminal before its cells fold."""


def _print_table(console: Console, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    """A table. On a terminal, rich's, coloured by state, for a terminal that may be narrow:
    the columns keep their width while they fit; past that, long cells (ids, paths, notes)
    fold onto more lines, never end in '…' nor drop a column (a cut id or path is useless).
    Elsewhere, plain aligned columns: whole lines, no trailing blanks, and fast (a rich table
    of 10,000 rows takes seconds)."""
    if not console.is_terminal:
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        lines = []
        for cells in [list(columns), *rows]:
            text = "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True))
            lines.append(text.rstrip())
        console.file.write("\n".join(lines) + "\n")
        console.file.flush()
        return
    table = Table(box=None, pad_edge=False)
    for i, col in enumerate(columns):
        # Short cells (a state, a time, a count) never fold; a long one (an id, a path) folds
        # down to FOLD_MIN characters a line rather than be cut or push a column off screen.
        longest = max([len(col), *(len(r[i]) for r in rows)])
        table.add_column(col, overflow="fold", min_width=min(longest, FOLD_MIN))
    state = columns.index("state") if "state" in columns else columns.index("to")
    for cells in rows:
        table.add_row(*[_state(c) if i == state else c for i, c in enumerate(cells)])
    console.print(table)


def _counts(counts: dict[str, int]) -> str:
    known = [s for s in STATE_ORDER if counts.get(s)]
    other = sorted(s for s in counts if s not in STATE_ORDER and counts[s])
    return ", ".join(f"{s} {counts[s]}" for s in [*known, *other])


def _duration(t: dict[str, Any]) -> str:
    return f"{t['duration_s']:.2f}s" if t.get("duration_s") is not None else ""


def _note(t: dict[str, Any]) -> str:
    return str(t.get("waiting") or t.get("error") or "")


TASK_COLUMNS = ("task", "state", "attempts", "duration", "note")


def _task_row(t: dict[str, Any]) -> list[str]:
    return [t["name"], t["state"], str(t["attempts"]), _duration(t), _note(t)]


def run_summary(console: Console, doc: dict[str, Any], *, every_task: bool = False) -> None:
    """A run's header, its tasks (or, for a big run, a summary of them) and its metrics."""
    m = doc["metrics"]
    tasks = doc["tasks"]
    head = Text(f"{doc['run_id']} ", style="bold")
    head.append_text(_state(doc["state"]))
    head.append(f"  workflow {doc['workflow']}")
    if m.get("duration_s") is not None:
        head.append(f"  {m['duration_s']:.2f}s")
    console.print(head)
    if doc.get("meta"):
        console.print(
            "meta: " + ", ".join(f"{k}={v}" for k, v in doc["meta"].items()), markup=False
        )
    if doc.get("error"):
        console.print(Text(f"error: {doc['error']}", style="red"))
    if every_task or len(tasks) <= SUMMARY_ABOVE:
        _print_table(console, TASK_COLUMNS, [_task_row(t) for t in tasks])
    else:
        _big_run(console, doc)
    for t in tasks:
        result = t.get("result")
        if isinstance(result, dict) and isinstance(result.get("report"), str):
            console.print(f"report ({t['name']}): {result['report']}", markup=False)
    console.print(_metrics_line(m, tasks), markup=False)
    if doc.get("workers", {}).get("note"):
        console.print(Text(doc["workers"]["note"], style="yellow"))


def _metrics_line(m: dict[str, Any], tasks: list[dict[str, Any]]) -> str:
    """Counts that mean what they say: tasks by state (a cancelled run shows its cancelled
    tasks, not a success rate over the few that ended), then attempts and retries."""
    counts = m.get("tasks_by_state") or dict(Counter(t["state"] for t in tasks))
    line = f"tasks {m['tasks']} ({_counts(counts)})" if counts else f"tasks {m['tasks']}"
    line += f"  attempts {m['attempts']}  retries {m['retries']}"
    if m.get("lost_attempts"):
        line += f"  lost {m['lost_attempts']}"
    wait = (m.get("wait_time_s") or {}).get("mean")
    if wait is not None:
        line += f"  mean wait {wait * 1000:.1f}ms"
    return line


def _big_run(console: Console, doc: dict[str, Any]) -> None:
    """Summary of a run with many tasks: its failures, then its slowest tasks."""
    tasks = doc["tasks"]
    problems = [t for t in tasks if t["state"] in ("failed", "timed_out", "retry_wait")]
    if problems:
        console.print(f"failures ({len(problems)}):", markup=False)
        _print_table(console, TASK_COLUMNS, [_task_row(t) for t in problems[:MAX_PROBLEMS]])
        if len(problems) > MAX_PROBLEMS:
            console.print(f"... and {len(problems) - MAX_PROBLEMS} more", markup=False)
    timed = [t for t in tasks if t.get("duration_s") is not None]
    if timed:
        slowest = sorted(timed, key=lambda t: t["duration_s"], reverse=True)[:SLOWEST]
        console.print(f"slowest {len(slowest)}:", markup=False)
        _print_table(console, TASK_COLUMNS[:-1], [_task_row(t)[:-1] for t in slowest])
    console.print(
        f"{len(tasks)} tasks: `reviewflow status {doc['run_id']} --all` lists every one"
        " (`--json` for scripts)",
        markup=False,
    )


def run_list(console: Console, runs: list[dict[str, Any]]) -> None:
    """Recent runs, newest first."""
    if not runs:
        console.print("no runs yet")
        return
    rows = [
        [
            r["run_id"],
            r["workflow"],
            r["state"],
            _time(r["created_at"]),
            ", ".join(f"{k}={v}" for k, v in r["meta"].items()),
        ]
        for r in runs
    ]
    _print_table(console, ("run", "workflow", "state", "created", "meta"), rows)


def event_table(console: Console, events: list[EventRecord]) -> None:
    """Events, oldest first."""
    rows = [
        [
            datetime.fromtimestamp(ev.at).strftime("%H:%M:%S.%f")[:-3],
            ev.task or "(run)",
            ev.from_state or "",
            ev.to_state,
            str(ev.attempt or ""),
            ev.detail or "",
        ]
        for ev in events
    ]
    _print_table(console, ("time", "task", "from", "to", "attempt", "detail"), rows)
