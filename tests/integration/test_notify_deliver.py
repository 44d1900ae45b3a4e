"""Notifications through the outbox, on every store backend: rows written with the state change,
delivered by a Deliverer to a local receiver that fails, hangs and recovers, signed, never in the
run's way; the outbox's claim/finish rules; approvals; Slack and email (a local SMTP server)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

from notify_receiver import Receiver, closed_port_url
from reviewflow.notify.deliver import Deliverer
from reviewflow.states import RunState
from reviewflow.store import outbox
from reviewflow.store.base import Store
from rfhelpers import arun, sh, workflow

SECRET = "s3cret-for-tests"  # pragma: allowlist secret
NO_RETRY = {"max_retries": 0}


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outbox.RETRY_BASE_ENV, "0.05")
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def _hook(url: str, **fields: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": url, "secret_env": "HOOK_SECRET", "timeout": 1, **fields}


def _failing(url: str, **fields: Any):
    return workflow(
        {"a": sh("exit 3", retry=NO_RETRY)}, name="notified", notifications=[_hook(url, **fields)]
    )


def _wait(predicate, timeout: float = 30.0) -> bool:
    """Poll a store-side condition (bounded); the tests' progress triggers are the receiver's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _all_delivered(store: Store) -> bool:
    rows = store.list_outbox()
    return bool(rows) and all(r.state == outbox.DELIVERED for r in rows)


# ------------------------------------------------------------------ written with the change


def test_the_rows_are_written_with_the_runs_end(store: Store, make_engine) -> None:
    spec = _failing("https://hooks.example/review", events=["run_finished", "run_failed"])
    state = arun(make_engine(store).run(spec, run_id="r1"))
    assert state is RunState.FAILED
    rows = store.list_outbox()
    events = sorted(r.data()["event"] for r in rows)
    assert events == ["run_failed", "run_finished"]
    for r in rows:
        assert (r.state, r.attempts, r.kind, r.run_id) == ("pending", 0, "webhook", "r1")
        assert r.delivery_id == outbox.delivery_id(r.dedupe_key)
        assert r.data()["workflow"] == "notified"
        assert r.data()["outcome"] == "failed"
        assert "exit code 3" in r.data()["error"]
        assert r.target_data()["secret_env"] == "HOOK_SECRET"
        assert SECRET not in r.payload + (r.target or "")
    # The same notification again (a resumed run, a re-sent batch) adds nothing.
    again = outbox.OutboxItem("webhook", rows[0].dedupe_key, {"event": "x"}, run_id="r1")
    assert store.enqueue([again]) == 0
    assert len(store.list_outbox()) == 2


def test_a_target_gets_only_the_events_it_asked_for(store: Store, make_engine) -> None:
    spec = workflow(
        {"a": sh("true")},
        notifications=[_hook("https://a.example/", events=["run_failed"]), _hook("https://b/")],
    )
    arun(make_engine(store).run(spec, run_id="ok"))
    rows = store.list_outbox()
    assert [(r.data()["event"], r.target_data()["url"]) for r in rows] == [
        ("run_finished", "https://b/")
    ]


def test_a_run_without_notifications_writes_no_row(store: Store, make_engine) -> None:
    arun(make_engine(store).run(workflow({"a": sh("exit 1", retry=NO_RETRY)})))
    assert store.list_outbox() == []
    assert store.next_outbox_due() is None


# ------------------------------------------------------------------ claim and finish rules


def test_claims_lease_retry_lost_claims_and_giving_up(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(outbox.RETRY_BASE_ENV, "600")  # k1's retry is not due by itself
    items = [
        outbox.OutboxItem("webhook", "k1", {"event": "run_finished"}, run_id=None),
        outbox.OutboxItem("webhook", "k2", {"event": "run_failed"}, retry_for=0.0),
        outbox.OutboxItem("webhook", "k3", {"event": "run_failed"}),
    ]
    assert store.enqueue(items) == 3
    claimed = store.claim_outbox("a", 60.0, 10)
    assert sorted(r.dedupe_key for r in claimed) == ["k1", "k2", "k3"]
    assert all(r.attempts == 1 for r in claimed)
    assert store.claim_outbox("b", 60.0, 10) == []  # leased to a
    by_key = {r.dedupe_key: r for r in claimed}
    # A presumed-dead deliverer's late answer changes nothing.
    assert store.finish_outbox(by_key["k1"], "b", None, 0.1) is None
    assert store.finish_outbox(by_key["k1"], "a", "HTTP 500", 0.1) == "pending"
    assert store.finish_outbox(by_key["k2"], "a", "HTTP 500", 0.1) == "failed"  # out of time
    assert store.finish_outbox(by_key["k3"], "a", "HTTP 404", 0.1, permanent=True) == "failed"
    rows = {r.dedupe_key: r for r in store.list_outbox()}
    k1 = rows["k1"]
    assert k1.next_at > k1.created_at and k1.lease_owner is None
    assert [a["error"] for a in k1.attempts_list()] == ["HTTP 500"]
    failed = {r.dedupe_key for r in store.list_outbox(failed_only=True)}
    assert failed == {"k1", "k2", "k3"}  # k1: pending after a failed attempt
    assert store.retry_outbox_now() == 1  # k1 (the failed ones are done, none is leased)
    assert len(store.claim_outbox("b", 60.0, 10)) == 1
    again = store.list_outbox()[-1]
    assert again.dedupe_key == "k1" and again.attempts == 2 and again.lease_owner == "b"


def test_backoff_grows_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(outbox.RETRY_BASE_ENV)
    delays = [outbox.backoff(n, lambda: 0.5) for n in range(1, 15)]
    assert delays[:3] == [2.0, 4.0, 8.0]
    assert max(delays) == outbox.BACKOFF_MAX
    assert outbox.backoff(1, lambda: 0.0) < outbox.backoff(1, lambda: 1.0)  # jitter


# ------------------------------------------------------------------ delivery


def test_receiver_fails_hangs_and_recovers_nothing_lost(store: Store, make_engine) -> None:
    with Receiver(plan=["fail", "fail", "hang", "fail"], secret=SECRET) as receiver:
        deliverer = Deliverer(store).start()
        try:
            spec = _failing(receiver.url, events=["run_finished", "run_failed"])
            assert arun(make_engine(store).run(spec)) is RunState.FAILED
            rows = store.list_outbox()
            wanted = {r.delivery_id for r in rows}
            assert len(wanted) == 2
            assert receiver.wait_for(
                lambda reqs: wanted <= {r.delivery_id for r in reqs if r.answer == "ok"}
            )
            assert _wait(lambda: _all_delivered(store))
        finally:
            receiver.release()
            deliverer.stop()
        requests = list(receiver.requests)
    assert len(requests) >= 6  # 4 failed or hung attempts, then both delivered
    assert all(r.signature_ok for r in requests)
    bodies: dict[str, bytes] = {}
    for r in requests:
        body = r.json()
        assert body["delivery_id"] == r.delivery_id
        assert r.headers["X-Reviewflow-Event"] == body["event"]
        assert bodies.setdefault(r.delivery_id, r.body) == r.body  # a duplicate is the same
    assert set(bodies) == wanted
    attempts = {r.delivery_id: r.attempts for r in store.list_outbox()}
    assert sum(attempts.values()) == len(requests)


def test_two_deliverers_never_send_one_notification_twice(stores) -> None:
    first, second = stores.main, stores.second_handle()
    with Receiver(secret=SECRET) as receiver:
        target = _hook(receiver.url, timeout=30)  # no attempt times out on a busy machine
        items = [
            outbox.OutboxItem("webhook", f"k{i}", {"event": "run_finished"}, target=target)
            for i in range(30)
        ]
        assert first.enqueue(items) == 30
        deliverers = [Deliverer(first).start(), Deliverer(second).start()]
        try:
            assert receiver.wait_for(lambda reqs: len(reqs) >= 30)
            assert _wait(lambda: _all_delivered(first))
        finally:
            for d in deliverers:
                d.stop()
        ids = [r.delivery_id for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 30  # the receiver never failed: no retry, no duplicate
    assert {r.attempts for r in first.list_outbox()} == {1}


def test_a_deliverer_with_a_fast_clock_does_not_take_a_leased_row(
    stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliverers on several hosts share one PostgreSQL database: a lease is measured on the
    database's clock, so a host whose clock runs an hour ahead does not see another's lease
    as ended (it would send the same notification again)."""
    if getattr(stores.main, "dialect", None) != "postgresql":
        pytest.skip("one process, one clock: only PostgreSQL is shared by several hosts")
    first, second = stores.main, stores.second_handle()
    assert first.enqueue([outbox.OutboxItem("webhook", "k1", {"event": "run_finished"})]) == 1
    assert [r.dedupe_key for r in first.claim_outbox("a", 60.0, 10)] == ["k1"]
    real = time.time
    monkeypatch.setattr(outbox.time, "time", lambda: real() + 3600)
    assert second.claim_outbox("b", 60.0, 10) == []
    assert second.retry_outbox_now() == 0  # leased: not made due either
    [row] = second.list_outbox()
    assert (row.lease_owner, row.attempts) == ("a", 1)


def test_a_down_target_neither_fails_nor_slows_the_run(store: Store, make_engine) -> None:
    with Receiver(then="hang", secret=SECRET) as receiver:
        deliverer = Deliverer(store).start()
        try:
            spec = workflow(
                {"a": sh("true"), "b": sh("true", needs=["a"])},
                notifications=[_hook(receiver.url, timeout=30), _hook(closed_port_url())],
            )
            assert arun(make_engine(store).run(spec, run_id="r1")) is RunState.SUCCEEDED
            assert receiver.wait_for(lambda reqs: len(reqs) >= 1)
            run = store.get_run("r1")
            assert run is not None and run.finished_at is not None
            assert run.finished_at <= receiver.requests[0].at  # ended before the send began
            assert _wait(lambda: any(r.last_error for r in store.list_outbox()))
            refused = [r for r in store.list_outbox() if r.last_error]
            assert "ConnectError" in refused[0].last_error
            assert store.get_run("r1").state == "succeeded"  # type: ignore[union-attr]
            hung = next(r for r in store.list_outbox() if not r.last_error)
            assert hung.state == "pending" and hung.attempts == 1  # still in flight
            receiver.release()
            assert _wait(
                lambda: {r.id: r.state for r in store.list_outbox()}[hung.id] == "delivered"
            )
        finally:
            receiver.release()
            deliverer.stop()


def test_slack_message_format(store: Store, make_engine) -> None:
    with Receiver() as receiver:
        deliverer = Deliverer(store).start()
        try:
            spec = workflow(
                {"a": sh("true")},
                name="slacked",
                notifications=[{"kind": "slack", "url": receiver.url, "events": ["run_finished"]}],
            )
            arun(make_engine(store).run(spec, run_id="r-slack"))
            assert receiver.wait_for(lambda reqs: len(reqs) == 1)
        finally:
            deliverer.stop()
    body = receiver.requests[0].json()
    assert body["text"].startswith("*slacked: run r-slack finished: succeeded*")
    assert body["blocks"][0]["text"]["text"] == body["text"]
    assert "X-Reviewflow-Signature" not in receiver.requests[0].headers


def test_approval_notifications_carry_the_commands(store: Store, make_engine) -> None:
    with Receiver() as receiver:
        deliverer = Deliverer(store).start()
        try:
            spec = workflow(
                {"gate": {"type": "approval"}, "after": sh("true", needs=["gate"])},
                notifications=[_hook(receiver.url)],
            )
            engine = make_engine(store)

            def approve_when_asked() -> None:
                if receiver.wait_for(lambda reqs: len(reqs) >= 1):
                    body = receiver.requests[0].json()
                    assert body["event"] == "approval_requested"
                    store.decide_approval(body["run_id"], body["task"], "approved", "me", None, 0)

            helper = threading.Thread(target=approve_when_asked)
            helper.start()
            assert arun(engine.run(spec, run_id="r-gate")) is RunState.SUCCEEDED
            helper.join(30)
            assert receiver.wait_for(lambda reqs: len(reqs) >= 2)
        finally:
            deliverer.stop()
    asked, finished = (r.json() for r in receiver.requests[:2])
    assert asked["task"] == "gate" and asked["state"] == "waiting"
    assert asked["approve"].startswith("reviewflow approve r-gate gate")
    assert asked["reject"].startswith("reviewflow reject r-gate gate")
    assert (finished["event"], finished["outcome"]) == ("run_finished", "succeeded")


@pytest.mark.parametrize("policy", ["escalate", "reject"])
def test_approval_escalated_and_timed_out(store: Store, make_engine, policy: str) -> None:
    spec = workflow(
        {"gate": {"type": "approval", "timeout": "0.2s", "on_timeout": policy}},
        notifications=[_hook("https://hooks.example/")],
    )
    engine = make_engine(store)

    async def main() -> RunState:
        run = asyncio.ensure_future(engine.run(spec, run_id="r-t"))
        if policy == "escalate":
            while not any(r.data()["event"] == "approval_escalated" for r in store.list_outbox()):
                await asyncio.sleep(0.02)
            store.decide_approval("r-t", "gate", "rejected", "me", "no", 0)
        return await run

    arun(main())
    events = sorted(r.data()["event"] for r in store.list_outbox())
    expected = {
        "escalate": ["approval_escalated", "approval_requested", "run_failed", "run_finished"],
        "reject": ["approval_requested", "approval_timed_out", "run_failed", "run_finished"],
    }
    assert events == expected[policy]
    if policy == "reject":
        timed_out = next(
            r for r in store.list_outbox() if r.data()["event"] == "approval_timed_out"
        )
        assert timed_out.data()["decision"] == "rejected"


# ------------------------------------------------------------------ email


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_email_through_a_local_smtp_server(store: Store, make_engine) -> None:
    from aiosmtpd.controller import Controller

    received: list[Any] = []
    arrived = threading.Event()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            arrived.set()
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        deliverer = Deliverer(store).start()
        try:
            target = {
                "kind": "email",
                "host": "127.0.0.1",
                "port": port,
                "tls": "none",
                "from": "reviewflow@example.org",
                "to": ["team@example.org"],
                "events": ["run_failed"],
            }
            spec = workflow(
                {"a": sh("exit 1", retry=NO_RETRY)}, name="mailed", notifications=[target]
            )
            arun(make_engine(store).run(spec, run_id="r-mail"))
            assert arrived.wait(30)
        finally:
            deliverer.stop()
    finally:
        controller.stop()
    envelope = received[0]
    assert envelope.rcpt_tos == ["team@example.org"]
    text = envelope.content.decode()
    row = store.list_outbox()[0]
    assert "Subject: [reviewflow] mailed: run r-mail failed" in text
    assert f"Message-ID: <{row.delivery_id}@reviewflow>" in text
    assert _wait(lambda: _all_delivered(store))
