"""The `approval` task type: waits for a person to approve or reject.

The decision lives in the store (`approvals` table), written by `reviewflow approve|reject`
from any process. The waiting attempt polls it, so the process that started the wait may exit
(Ctrl-C, a crash, a CI job ending): `reviewflow resume` restarts the attempt, which finds the
decision at once. The timeout counts from the first time the task started waiting, across
restarts, and ends in the task's `on_timeout` policy:

- reject (default): the task fails ("no decision within 72h"),
- approve: the task succeeds, recorded as approved by `timeout`,
- escalate: an event says who it was escalated to (`params.escalate_to`) and the wait goes on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import ApprovalDecided, SpecError, TaskFailed

if TYPE_CHECKING:
    from ..spec import TaskSpec
    from .base import TaskContext

POLL_SECONDS = 0.25
TIMEOUT_APPROVER = "timeout"
WAITING = "waiting for approval"
"""How the event of an approval that starts waiting begins (a CI job stops on it)."""


def _hours(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _findings_so_far(results: dict[str, Any]) -> str:
    """What the checks before the gate found, so the person knows what they approve."""
    counts = {"error": 0, "warning": 0}
    checks = 0
    for value in results.values():
        if isinstance(value, dict) and isinstance(value.get("findings"), list):
            checks += 1
            for f in value["findings"]:
                if isinstance(f, dict) and f.get("severity") in counts:
                    counts[f["severity"]] += 1
    if not checks:
        return ""
    return f"checks so far: {counts['error']} error(s), {counts['warning']} warning(s)"


def _escalated_before(ctx: TaskContext) -> bool:
    """An attempt restarted after a crash must not escalate a second time."""
    assert ctx.store is not None
    return any(
        e.task == ctx.task and (e.detail or "").startswith("escalated")
        for e in ctx.store.get_events(ctx.run_id)
    )


class ApprovalTaskType:
    """A human gate: no command, just a durable decision."""

    name = "approval"
    owns_timeout = True
    durable_wait = True

    def validate(self, spec: TaskSpec) -> None:
        if spec.run is not None or spec.call is not None:
            raise SpecError(
                "an approval task has no run or call (a person decides)",
                task=spec.name,
                field="run" if spec.run is not None else "call",
            )
        approvers = spec.params.get("approvers", [])
        if not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers):
            raise SpecError(
                "params.approvers must be a list of names", task=spec.name, field="params.approvers"
            )

    async def execute(self, ctx: TaskContext) -> Any:
        import asyncio

        store = ctx.store
        if store is None:
            raise TaskFailed("approval tasks need a store", retryable=False)
        spec = ctx.spec
        record = store.open_approval(ctx.run_id, ctx.task, time.time())
        assert record.requested_at is not None
        deadline = record.requested_at + spec.timeout if spec.timeout else None
        hint = f"{WAITING}: reviewflow approve {ctx.run_id} {ctx.task}"
        found = _findings_so_far(ctx.results)
        if found:
            hint += f" ({found})"
        escalated = False
        if record.decision is None:
            self._say(ctx, hint)
        while True:
            record = store.get_approval(ctx.run_id, ctx.task) or record
            if record.decision is not None:
                return self._decided(ctx, record.decision, record.approver, record.comment)
            now = time.time()
            if deadline is not None and now >= deadline and not escalated:
                policy = spec.on_timeout or "reject"
                waited = _hours(spec.timeout or 0)
                if policy == "escalate":
                    escalated = True
                    to = ctx.params.get("escalate_to")
                    text = f"escalated{' to ' + to if to else ''}: no decision within {waited}"
                    if ctx.note is not None and not _escalated_before(ctx):
                        ctx.note(text)
                    self._say(ctx, f"{text}; {hint}", note=False)
                    continue
                decision = "approved" if policy == "approve" else "rejected"
                try:
                    record = store.decide_approval(
                        ctx.run_id,
                        ctx.task,
                        decision,
                        TIMEOUT_APPROVER,
                        f"no decision within {waited}",
                        now,
                        (
                            ctx.run_id,
                            ctx.task,
                            "running",
                            "running",
                            ctx.attempt,
                            now,
                            f"{decision} by {TIMEOUT_APPROVER}: no decision within {waited}",
                        ),
                    )
                except ApprovalDecided:
                    continue  # a person decided in the same instant: theirs stands
                return self._decided(
                    ctx, record.decision or decision, record.approver, record.comment
                )
            wait = (
                POLL_SECONDS
                if deadline is None or escalated
                else max(0.0, min(POLL_SECONDS, deadline - now))
            )
            await asyncio.sleep(wait)

    @staticmethod
    def _say(ctx: TaskContext, text: str, *, note: bool = True) -> None:
        if ctx.waiting is not None:
            ctx.waiting(text)
        if note and ctx.note is not None:
            ctx.note(text)

    @staticmethod
    def _decided(
        ctx: TaskContext, decision: str, approver: str | None, comment: str | None
    ) -> dict[str, Any]:
        if ctx.waiting is not None:
            ctx.waiting(None)
        said = f": {comment}" if comment else ""
        if decision != "approved":
            raise TaskFailed(f"rejected by {approver}{said}", retryable=False)
        return {"decision": decision, "approver": approver, "comment": comment}
