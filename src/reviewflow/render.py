"""Terminal renderings (rich) of status documents and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

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


def _time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _state(state: str) -> Text:
    return Text(state, style=STATE_COLORS.get(state, ""))


def run_summary(console: Console, doc: dict[str, Any]) -> None:
    """A run's header, its tasks and its metrics."""
    m = doc["metrics"]
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
    table = Table(box=None, pad_edge=False)
    for col in ("task", "state", "attempts", "duration", "note"):
        table.add_column(col)
    for t in doc["tasks"]:
        duration = f"{t['duration_s']:.2f}s" if t["duration_s"] is not None else ""
        note = t.get("waiting") or t.get("error") or ""
        table.add_row(t["name"], _state(t["state"]), str(t["attempts"]), duration, note[:100])
    console.print(table)
    for t in doc["tasks"]:
        result = t.get("result")
        if isinstance(result, dict) and isinstance(result.get("report"), str):
            console.print(f"report ({t['name']}): {result['report']}", markup=False)
    rate = m.get("success_rate")
    wait = m["wait_time_s"]["mean"]
    console.print(
        f"tasks {m['tasks']}  attempts {m['attempts']}  retries {m['retries']}"
        + (f"  lost {m['lost_attempts']}" if m.get("lost_attempts") else "")
        + (f"  success {rate:.0%}" if rate is not None else "")
        + (f"  mean wait {wait * 1000:.1f}ms" if wait is not None else ""),
        markup=False,
    )
    if doc.get("workers", {}).get("note"):
        console.print(Text(doc["workers"]["note"], style="yellow"))


def run_list(console: Console, runs: list[dict[str, Any]]) -> None:
    """Recent runs, newest first."""
    if not runs:
        console.print("no runs yet")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("run", "workflow", "state", "created", "meta"):
        table.add_column(col)
    for r in runs:
        meta = ", ".join(f"{k}={v}" for k, v in r["meta"].items())
        table.add_row(r["run_id"], r["workflow"], _state(r["state"]), _time(r["created_at"]), meta)
    console.print(table)


def event_table(console: Console, events: list[EventRecord]) -> None:
    """Events, oldest first."""
    table = Table(box=None, pad_edge=False)
    for col in ("time", "task", "from", "to", "attempt", "detail"):
        table.add_column(col)
    for ev in events:
        stamp = datetime.fromtimestamp(ev.at).strftime("%H:%M:%S.%f")[:-3]
        table.add_row(
            stamp,
            ev.task or "(run)",
            ev.from_state or "",
            _state(ev.to_state),
            str(ev.attempt or ""),
            ev.detail or "",
        )
    console.print(table)
