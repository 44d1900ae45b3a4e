"""Notifications from real `reviewflow` processes: a sender SIGKILLed between the commit of the
run's end and the end of the send, whose notification another process delivers (same delivery
id); workers delivering what their runs cause; `reviewflow notifications`; bad targets (exit 2)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from clihelpers import Cli, Procs, run_state, sh, try_query, wait_for, write_workflow

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from notify_receiver import Receiver, closed_port_url  # noqa: E402
from reviewflow.store import open_store  # noqa: E402

SECRET = "another-test-secret"  # pragma: allowlist secret


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("REVIEWFLOW_NOTIFY_RETRY_BASE", "0.05")


def _hook(url: str, **fields: object) -> dict[str, object]:
    return {"kind": "webhook", "url": url, "secret_env": "HOOK_SECRET", **fields}


def _shift_leases(db: str) -> None:
    """Make the dead sender's lease run out now (instead of waiting LEASE seconds)."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'")
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "rf.db")


@pytest.mark.slow
def test_sigkill_between_commit_and_send_then_another_process_delivers(
    procs: Procs, tmp_path: Path, db: str
) -> None:
    with Receiver(plan=["hang"], secret=SECRET) as receiver:
        wf = write_workflow(
            tmp_path / "wf.yaml",
            {"a": sh("true")},
            notifications=[_hook(receiver.url, events=["run_finished"], timeout=60)],
        )
        sender = procs.start("run", str(wf), "--db", db, "--run-id", "r-kill", run_id="r-kill")
        # Progress: the run's end is committed with its outbox row, and the send has begun.
        assert receiver.wait_for(lambda reqs: len(reqs) == 1)
        procs.kill(sender)
        store = open_store(db)
        try:
            assert store.get_run("r-kill").state == "succeeded"  # type: ignore[union-attr]
            (row,) = store.list_outbox()
            assert (row.state, row.attempts, row.delivered_at) == ("pending", 1, None)
            assert row.lease_owner is not None  # the dead process's claim
        finally:
            store.close()
        _shift_leases(db)
        done = procs.run("notifications", "--db", db, "--deliver", "30", "--json")
        assert done.returncode == 0, done.stderr
        (shown,) = json.loads(done.stdout)
        assert (shown["state"], shown["attempts"]) == ("delivered", 2)
        lost, ok = shown["history"]
        assert lost["error"].startswith("lost:") and ok["ok"] is True
        requests = list(receiver.requests)
    assert [r.answer for r in requests] == ["hang", "ok"]
    assert {r.delivery_id for r in requests} == {row.delivery_id}  # a duplicate, same id
    assert requests[0].body == requests[1].body
    assert all(r.signature_ok for r in requests)
    assert requests[1].json()["event"] == "run_finished"


@pytest.mark.slow
def test_sigkill_as_soon_as_the_row_is_committed(procs: Procs, tmp_path: Path) -> None:
    """Killed on the commit itself (the send may or may not have begun): the notification
    still arrives, once or twice, under one delivery id."""
    db = tmp_path / "rf.db"
    with Receiver(secret=SECRET) as receiver:
        wf = write_workflow(
            tmp_path / "wf.yaml",
            {"a": sh("true"), "b": sh("true", needs=["a"])},
            notifications=[_hook(receiver.url, events=["run_finished"])],
        )
        sender = procs.start("run", str(wf), "--db", str(db), "--run-id", "r-k2", run_id="r-k2")
        (delivery_id,) = wait_for(
            lambda: try_query(db, "SELECT delivery_id FROM outbox"), "the outbox row", 60, 0.001
        )[0]
        procs.kill(sender)
        _shift_leases(str(db))
        done = procs.run("notifications", "--db", str(db), "--deliver", "30", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["state"] == "delivered"
        assert receiver.wait_for(lambda reqs: any(r.answer == "ok" for r in reqs))
        requests = list(receiver.requests)
    assert {r.delivery_id for r in requests} == {delivery_id}
    assert 1 <= len(requests) <= 2 and len({r.body for r in requests}) == 1
    assert all(r.signature_ok for r in requests)


@pytest.mark.slow
def test_workers_deliver_the_notifications_of_their_runs(
    procs: Procs, tmp_path: Path, pg_url: str
) -> None:
    with Receiver(plan=["fail"], secret=SECRET) as receiver:
        wf = write_workflow(
            tmp_path / "wf.yaml",
            {"a": sh("true"), "b": sh("exit 4", needs=["a"], retry={"max_retries": 0})},
            notifications=[_hook(receiver.url)],
        )
        submitted = procs.run("run", str(wf), "--db", pg_url, "--submit", "--run-id", "r-w")
        assert submitted.returncode == 0, submitted.stderr
        worker = procs.start("worker", "--db", pg_url, "--poll-interval", "0.05")
        try:
            assert receiver.wait_for(
                lambda reqs: (
                    {r.json()["event"] for r in reqs if r.answer == "ok"}
                    == {"run_finished", "run_failed"}
                )
            )
        finally:
            procs.kill(worker)
        requests = list(receiver.requests)
    assert all(r.signature_ok for r in requests)
    finished = next(r.json() for r in requests if r.json()["event"] == "run_finished")
    assert (finished["run_id"], finished["outcome"]) == ("r-w", "failed")


def test_notifications_lists_deliveries_and_attempts(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path / "wf.yaml",
        {"a": sh("exit 1", retry={"max_retries": 0})},
        notifications=[_hook(closed_port_url(), events=["run_failed"])],
    )
    ran = cli("run", wf, "--run-id", "r1", "--db", cli.db)
    assert ran.exit_code == 1
    assert run_state(cli.db, "r1") == "failed"
    shown = cli("notifications", "--failed", "--db", cli.db)
    assert shown.exit_code == 0, shown.output
    assert "run_failed r1 -> webhook http://127.0.0.1:" in shown.output
    assert "#1 " in shown.output and "ConnectError" in shown.output
    doc = json.loads(cli("notifications", "--json", "--run", "r1", "--db", cli.db).output)
    assert doc[0]["event"] == "run_failed" and doc[0]["history"][0]["ok"] is False
    assert cli("notifications", "--run", "x", "--db", cli.db).output.strip() == "no deliveries"


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ({"kind": "webhook", "url": "ftp://hooks.example/x"}, "notifications.0.url"),
        ({"kind": "webhook", "url": "https://u:pw@hooks.example/x"}, "notifications.0.url"),
        ({"kind": "webhook", "url": "https://h/", "events": ["done"]}, "notifications.0.events.0"),
        (
            {"kind": "email", "host": "smtp.example", "to": ["a@example.org"]},
            "notifications.0.from",
        ),
        ({"kind": "pager", "url": "https://h/"}, "notifications.0.kind"),
    ],
)
def test_a_bad_target_is_refused_naming_the_field(
    cli: Cli, tmp_path: Path, target: dict[str, object], field: str
) -> None:
    wf = write_workflow(tmp_path / "wf.yaml", {"a": sh("true")}, notifications=[target])
    result = cli("validate", wf)
    assert result.exit_code == 2
    assert f"field '{field}'" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_a_bad_notifications_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWFLOW_API_TOKENS", "t0ken-for-tests")
    bad = tmp_path / "targets.yaml"
    bad.write_text('- {kind: slack, url: "https://hooks.example/x", secret_env: "X"}\n')
    result = cli("serve", "--notifications", bad)
    assert result.exit_code == 2
    assert "field 'notifications.0.secret_env'" in result.output
    monkeypatch.setenv("REVIEWFLOW_API_TOKENS", "t0ken-for-tests")  # serve took it out
    result = cli("serve", "--public-url", "javascript:alert(1)")
    assert result.exit_code == 2 and "--public-url" in result.output


def test_deliver_from_the_cli_and_targets_without_a_url_shown(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNSET_HOOK_URL", raising=False)
    monkeypatch.setenv("REVIEWFLOW_NOTIFY_RETRY_BASE", "600")  # one try each, then --deliver's
    port = int(closed_port_url().rsplit(":", 1)[1].split("/")[0])
    mail = {
        "kind": "email",
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "from": "rf@example.org",
        "to": ["team@example.org"],
        "events": ["run_finished"],
        "timeout": 2,
    }
    wf = write_workflow(
        tmp_path / "wf.yaml",
        {"a": sh("true")},
        notifications=[{"kind": "slack", "url_env": "UNSET_HOOK_URL"}, mail],
    )
    assert cli("run", wf, "--run-id", "r2", "--db", cli.db).exit_code == 0
    shown = cli("notifications", "--db", cli.db, "--deliver", "5")
    assert shown.exit_code == 0, shown.output
    assert "slack $UNSET_HOOK_URL" in shown.output
    assert "url_env: environment variable UNSET_HOOK_URL is not set" in shown.output
    assert "email mail to team@example.org" in shown.output
    assert "SMTP ConnectionRefusedError" in shown.output
    doc = json.loads(cli("notifications", "--db", cli.db, "--json").output)
    assert {d["attempts"] for d in doc} == {2}  # the run's own try, then --deliver's
    missing = cli("notifications", "--db", tmp_path / "nothing.db")
    assert missing.exit_code == 2 and "no database" in missing.output
