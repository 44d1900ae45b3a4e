"""Notifications through the outbox, on every store backend: delivered by a Deliverer to a local
receiver that fails, hangs and recovers, signed, never in the run's way; approvals; Slack and
email (a local SMTP server). The outbox's rows and claim/finish rules: test_store_outbox.py."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

from notify_receiver import HOOK_SECRET, Receiver, closed_port_url, failing_notified, hook_target
from reviewflow.notify.deliver import Deliverer
from reviewflow.states import RunState
from reviewflow.store import outbox
from reviewflow.store.base import Store
from rfhelpers import arun, sh, workflow

NO_RETRY = {"max_retries": 0}


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(outbox.RETRY_BASE_ENV, "0.05")
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)


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


# ------------------------------------------------------------------ delivery


def test_receiver_fails_hangs_and_recovers_nothing_lost(store: Store, make_engine) -> None:
    with Receiver(plan=["fail", "fail", "hang", "fail"], secret=HOOK_SECRET) as receiver:
        deliverer = Deliverer(store).start()
        try:
            spec = failing_notified(receiver.url, events=["run_finished", "run_failed"])
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
    with Receiver(secret=HOOK_SECRET) as receiver:
        target = hook_target(receiver.url, timeout=30)  # no attempt times out on a busy machine
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


def test_a_down_target_neither_fails_nor_slows_the_run(store: Store, make_engine) -> None:
    with Receiver(then="hang", secret=HOOK_SECRET) as receiver:
        deliverer = Deliverer(store).start()
        try:
            spec = workflow(
                {"a": sh("true"), "b": sh("true", needs=["a"])},
                notifications=[
                    hook_target(receiver.url, timeout=30),
                    hook_target(closed_port_url()),
                ],
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
                notifications=[hook_target(receiver.url)],
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
        notifications=[hook_target("https://hooks.example/")],
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
