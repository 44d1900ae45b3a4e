"""Progress of a run while it executes: a rich live table on a terminal, plain lines otherwise."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .render import STATE_COLORS

if TYPE_CHECKING:
    from .engine import Engine
    from .runtime import LiveRun

PLAIN_STATES = {"running", "succeeded", "failed", "retry_wait", "timed_out", "cancelled", "skipped"}
MAX_ROWS = 25
QUIET_ABOVE = 200  # plain output: tasks beyond this many print only problems


class Progress:
    """Receives engine transitions and shows them; `follow` drives the live view."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.live = console.is_terminal
        self.quiet = False

    def on_transition(
        self,
        run_id: str,
        task: str | None,
        frm: str | None,
        to: str,
        attempt: int | None,
        detail: str | None,
    ) -> None:
        if not self.enabled or self.live:
            return
        if task is None:
            if frm != to:
                self._line(f"run {run_id}: {frm} -> {to}" + (f" ({detail})" if detail else ""))
            return
        if frm == to:  # an informational event (an approval waiting, escalated, decided)
            if detail:
                self._line(f"{task}: {detail}")
            return
        if to not in PLAIN_STATES or (self.quiet and to in ("running", "succeeded", "skipped")):
            return
        text = f"{task}: {to}"
        if attempt and to in ("running", "retry_wait", "failed", "timed_out"):
            text += f" (attempt {attempt})"
        if detail and to != "running":
            text += f" - {detail}"
        self._line(text)

    def _line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        try:
            self.console.print(f"{stamp} {text}", markup=False, highlight=False)
        except (BrokenPipeError, SystemExit):  # `reviewflow run ... | head`: stop printing
            self.enabled = False

    async def follow(self, engine: Engine, run_id: str, task: asyncio.Future[Any]) -> None:
        """Wait for `task` (the engine executing the run), refreshing the view meanwhile."""
        await asyncio.sleep(0)
        run = engine.live_run(run_id)
        self.quiet = run is not None and len(run.tasks) > QUIET_ABOVE
        if not self.enabled or not self.live:
            await asyncio.wait([task])
            return
        with Live(console=self.console, auto_refresh=False, transient=True) as live:
            while not task.done():
                run = engine.live_run(run_id) or run
                if run is not None:
                    live.update(self.render(run), refresh=True)
                await asyncio.wait([task], timeout=0.25)
            if run is not None:
                live.update(self.render(run), refresh=True)

    def render(self, run: LiveRun) -> Group:
        """Counts by state, then the most interesting tasks (running, problems, the rest)."""
        now = time.time()
        tasks = list(run.tasks.values())
        counts = Counter(t.state.value for t in tasks)
        head = Text(f"{run.run_id}  {run.state.value}  ", style="bold")
        head.append("  ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
        order = {"running": 0, "retry_wait": 1, "failed": 2, "timed_out": 2, "ready": 3}
        shown = sorted(tasks, key=lambda t: order.get(t.state.value, 4))[:MAX_ROWS]
        table = Table(box=None, pad_edge=False)
        for col in ("task", "state", "attempts", "elapsed", "note"):
            table.add_column(col)
        for t in shown:
            elapsed = ""
            if t.started_at is not None:
                end = t.finished_at if t.finished_at and t.finished_at >= t.started_at else now
                elapsed = f"{end - t.started_at:.1f}s"
            note = t.wait_reason or (t.error or "")
            table.add_row(
                t.name,
                Text(t.state.value, style=STATE_COLORS.get(t.state.value, "")),
                str(t.attempts),
                elapsed,
                note[:80],
            )
        if len(tasks) > len(shown):
            table.add_row(f"... {len(tasks) - len(shown)} more", "", "", "", "")
        return Group(head, table)
