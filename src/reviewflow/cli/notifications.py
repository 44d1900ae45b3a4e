"""`reviewflow notifications`: the outbox's deliveries and their attempts (and a way to send
what is due from a shell or a cron job: `--deliver`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ReviewflowError
from ..store import DEFAULT_DB
from .common import EXIT_FAILED, DbOpt, JsonOpt, _fail, _open, _print_json, app, out

if TYPE_CHECKING:
    from ..store.outbox import OutboxRecord


def _target(record: OutboxRecord) -> str:
    """Where a delivery goes, without secrets (a URL from the environment shows its name)."""
    target = record.target_data()
    if target.get("url"):
        return str(target["url"])
    if target.get("url_env"):
        return f"${target['url_env']}"
    if target.get("to"):
        return "mail to " + ", ".join(target["to"])
    return "-"


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def delivery_doc(record: OutboxRecord) -> dict[str, Any]:
    """One delivery as `--json` shows it."""
    data = record.data()
    return {
        "id": record.id,
        "delivery_id": record.delivery_id,
        "kind": record.kind,
        "event": data.get("event"),
        "run_id": record.run_id,
        "task": data.get("task"),
        "target": _target(record),
        "state": record.state,
        "attempts": record.attempts,
        "created_at": record.created_at,
        "next_attempt_at": record.next_at if record.state == "pending" else None,
        "give_up_at": record.expires_at,
        "delivered_at": record.delivered_at,
        "last_error": record.last_error,
        "history": record.attempts_list(),
    }


@app.command("notifications")
def notifications(
    db: DbOpt = DEFAULT_DB,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed", help="Only deliveries given up on, or pending after a failed attempt."
        ),
    ] = False,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only the deliveries of this run.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest first, at most.")] = 50,
    deliver: Annotated[
        float | None,
        typer.Option(
            "--deliver",
            min=0.1,
            help="First send every pending delivery (backoff or not), waiting up to this"
            " many seconds (e.g. from cron).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List notification deliveries (webhook, Slack, email) and their attempts."""
    store = _open(db, must_exist=True)
    try:
        if deliver is not None:
            from ..notify.deliver import Deliverer

            store.retry_outbox_now()  # asked for now: no backoff to wait out
            deliverer = Deliverer(store)
            deliverer.deliver_due(deliver)
            deliverer.stop()
        records = store.list_outbox(failed_only=failed, limit=limit, run_id=run_id)
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    if as_json:
        _print_json([delivery_doc(r) for r in records])
        return
    if not records:
        out.print("no failed deliveries" if failed else "no deliveries", markup=False)
        return
    for r in records:
        data = r.data()
        task = f" {data['task']}" if data.get("task") else ""
        line = (
            f"{r.delivery_id}  {r.state:<9} {data.get('event')} {r.run_id}{task}"
            f" -> {r.kind} {_target(r)}  ({r.attempts} attempt{'s' if r.attempts != 1 else ''})"
        )
        out.print(line, markup=False)
        for attempt in r.attempts_list():
            outcome = "ok" if attempt.get("ok") else f"failed: {attempt.get('error')}"
            took = f" ({attempt['took']}s)" if attempt.get("took") is not None else ""
            out.print(
                f"    #{attempt.get('attempt')} {_when(attempt.get('at'))} {outcome}{took}",
                markup=False,
            )
        if r.state == "pending" and r.last_error:
            out.print(f"    next attempt {_when(r.next_at)}", markup=False)


__all__ = ["delivery_doc", "notifications"]
