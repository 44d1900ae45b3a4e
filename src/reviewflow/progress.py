"""Progress of a run while it executes: a rich live table on a terminal, plain lines otherwise.

On a terminal, everything else printed meanwhile (log lines, a task's own prints) goes through
the same rich Console as the live table, which prints it above the table: nothing lands inside
it. Without a terminal, each event is one line, written whole (no width, no cutting); when
routine transitions come faster than a few lines a second they are folded into one count line
("1234/10000 succeeded, 12 running"), while failures, retries and timeouts keep a line each.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .terminal import STATE_COLORS, STATE_ORDER

if TYPE_CHECKING:
    from .engine import Engine
    from .runtime import LiveRun

PROBLEMS = {"failed", "retry_wait", "timed_out"}
"""Task transitions that always get a line of their own."""
ROUTINE = {"running", "succeeded", "cancelled", "skipped"}
"""Task transitions shown one per line while the pace allows, else folded into counts."""
MAX_ROWS = 25
BURST = 20
"""Lines printed at once before the pace limit applies (a small run prints every transition)."""
LINES_PER_SECOND = 2.0
FLUSH_EVERY = 0.5
"""How often (seconds) folded transitions are summed up while the run goes on."""


class Progress:
    """Receives engine transitions and shows them; `follow` drives the live view."""

    def __init__(
        self,
        console: Console,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.clock = clock
        self.enabled = enabled
        self.live = console.is_terminal
        self.run: LiveRun | None = None
        self.states: dict[str, str] = {}  # task -> state, only while no live run is known
        self.counts: Counter[str] | None = None  # tasks by state, kept up to date once taken
        self.tokens = float(BURST)
        self.refilled = clock()
        self.folded = 0  # routine transitions not shown one by one since the last count line

    @property
    def prints_lines(self) -> bool:
        """Whether this view prints a line per event (so logs need not repeat them)."""
        return self.enabled and not self.live

    def on_transition(
        self,
        run_id: str,
        task: str | None,
        frm: str | None,
        to: str,
        attempt: int | None,
        detail: str | None,
    ) -> None:
        if not self.prints_lines:
            return
        if task is None:
            if frm != to:
                self._fold_now()
                self._line(f"run {run_id}: {frm} -> {to}" + (f" ({detail})" if detail else ""))
            return
        if frm == to:  # an informational event (an approval waiting, escalated, decided)
            if detail:
                self._line(f"{task}: {detail}")
            return
        counts = self.counts
        if counts is not None:
            counts[frm or ""] -= 1
            counts[to] += 1
        elif self.run is None:
            self.states[task] = to
        if to not in PROBLEMS and to not in ROUTINE:
            return
        text = f"{task}: {to}"
        if attempt and to in ("running", "retry_wait", "failed", "timed_out"):
            text += f" (attempt {attempt})"
        if detail and to != "running":
            text += f" - {detail}"
        if to in PROBLEMS:
            self._take_token()
            self._line(text)
        elif not self.folded and self._take_token():
            self._line(text)
        else:  # once folding, keep folding until the next count line: no stray single lines
            self.folded += 1

    def _take_token(self) -> bool:
        now = self.clock()
        self.tokens = min(float(BURST), self.tokens + (now - self.refilled) * LINES_PER_SECOND)
        self.refilled = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def _fold_now(self) -> None:
        """Print the count line for the transitions folded so far, if any."""
        if not self.folded:
            return
        self.folded = 0
        counts = self._counts()
        total = sum(counts.values())
        parts = [f"{counts.get('succeeded', 0)}/{total} succeeded"]
        parts += [f"{counts[s]} {s}" for s in STATE_ORDER if s != "succeeded" and counts.get(s)]
        self._line(", ".join(parts))

    def _counts(self) -> Counter[str]:
        """Tasks by state. Read from the live run once, then kept by `on_transition`: a count
        line every half second that read every task made a 1M-task run quadratic."""
        if self.counts is None and self.run is not None:
            self.counts = Counter(t.state._value_ for t in self.run.tasks.values())
            self.states.clear()
        if self.counts is not None:
            return +self.counts
        return Counter(self.states.values())

    def _line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        try:
            sys.stdout.write(f"{stamp} {text}\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):  # `reviewflow run ... | head`: stop printing
            self.enabled = False

    async def follow(self, engine: Engine, run_id: str, task: asyncio.Future[Any]) -> None:
        """Wait for `task` (the engine executing the run), refreshing the view meanwhile."""
        await asyncio.sleep(0)
        self.run = engine.live_run(run_id)
        if not self.enabled:
            await asyncio.wait([task])
            return
        if not self.live:
            while not task.done():
                await asyncio.wait([task], timeout=FLUSH_EVERY)
                if self.folded and self._take_token():
                    self._fold_now()
            self._fold_now()
            return
        # Log lines go to sys.stderr: when it is this terminal too, rich prints them above the
        # table. (When stderr goes to a file, it is left alone.) Rich must wrap what it shows
        # meanwhile itself, or it would not know how many lines to redraw.
        soft_wrap, self.console.soft_wrap = self.console.soft_wrap, False
        try:
            await self._live(engine, run_id, task)
        finally:
            self.console.soft_wrap = soft_wrap

    async def _live(self, engine: Engine, run_id: str, task: asyncio.Future[Any]) -> None:
        with Live(
            console=self.console,
            auto_refresh=False,
            transient=True,
            redirect_stderr=sys.stderr.isatty(),
            vertical_overflow="crop",
        ) as live:
            run = self.run
            while not task.done():
                run = engine.live_run(run_id) or run
                if run is not None:
                    live.update(self.render(run), refresh=True)
                await asyncio.wait([task], timeout=0.25)
            if run is not None:
                live.update(self.render(run), refresh=True)

    def render(self, run: LiveRun) -> Group:
        """Counts by state, then the most interesting tasks (running, problems, the rest).

        The whole view stays shorter than the terminal: a live region taller than the screen
        cannot be redrawn in place, and old frames would pile up in the scrollback."""
        now = time.time()
        tasks = list(run.tasks.values())
        counts = Counter(t.state.value for t in tasks)
        head = Text(f"{run.run_id}  {run.state.value}  ", style="bold", no_wrap=False)
        head.append("  ".join(f"{s}: {counts[s]}" for s in STATE_ORDER if counts.get(s)))
        width, height = self.console.size
        fixed = len("retry_wait") + len("attempts") + len("elapsed") + 4 * 2  # columns + gaps
        name_width = max(8, width - fixed - 1)
        longest = max((len(t.name) for t in tasks), default=4)
        note_width = max(0, width - fixed - min(name_width, longest))
        # lines left for rows: the head, the column titles, "... more" and one spare
        budget = min(MAX_ROWS, height - 3 - -(-len(head.plain) // max(1, width)))
        order = {"running": 0, "retry_wait": 1, "failed": 2, "timed_out": 2, "ready": 3}
        table = Table(box=None, pad_edge=False)
        table.add_column("task", overflow="fold", max_width=name_width)
        table.add_column("state", no_wrap=True, min_width=len("retry_wait"))
        table.add_column("attempts", no_wrap=True, min_width=len("attempts"))
        table.add_column("elapsed", no_wrap=True, min_width=len("elapsed"))
        table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=max(1, note_width))
        shown = 0
        for t in sorted(tasks, key=lambda t: order.get(t.state.value, 4)):
            budget -= -(-len(t.name) // name_width)  # a long name folds onto more lines
            if budget < 0:
                break
            shown += 1
            elapsed = ""
            if t.started_at is not None:
                end = t.finished_at if t.finished_at and t.finished_at >= t.started_at else now
                elapsed = f"{end - t.started_at:.1f}s"
            note = (t.wait_reason or t.error or "").splitlines()
            table.add_row(
                t.name,
                Text(t.state.value, style=STATE_COLORS.get(t.state.value, "")),
                str(t.attempts),
                elapsed,
                note[0] if note and note_width > 1 else "",
            )
        if len(tasks) > shown:
            table.add_row(f"... {len(tasks) - shown} more", "", "", "", "")
        return Group(head, table)
