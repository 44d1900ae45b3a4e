"""What each notification sender sends (`notify/senders.py`) and how it fails: the webhook's
signature and headers, Slack's text, the email's headers and body; an answer that trying again
cannot change (404) is a permanent failure, a busy or broken receiver (429, 5xx, refused
connection) one to retry. Real HTTP to a receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from notify_receiver import Receiver, closed_port_url
from reviewflow.notify.senders import (
    SendError,
    body_of,
    email_message,
    send_slack,
    send_webhook,
    signature,
    summary,
)
from reviewflow.store import outbox

SECRET = "s3cret-for-tests"  # pragma: allowlist secret
APPROVAL = {
    "event": "approval_requested",
    "run_id": "r1",
    "workflow": "wf",
    "task": "gate",
    "approve": "reviewflow approve r1 gate",
    "reject": "reviewflow reject r1 gate",
    "url": "https://rf.example/ui/runs/r1",
}


def _record(kind: str, payload: dict, target: dict) -> outbox.OutboxRecord:
    item = outbox.OutboxItem(kind, "k", payload, run_id="r1", target=target)
    row = item.row(100.0)
    return outbox.OutboxRecord(1, *row[:6], "pending", 1, *row[6:], None, None, None, None)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"event": "run_failed"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) == f"sha256={expected}"


def test_a_missing_secret_or_url_variable_is_a_failed_attempt(monkeypatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    record = _record("webhook", {"event": "run_failed"}, {"url_env": "NOPE", "timeout": 1})
    with pytest.raises(SendError, match="url_env: environment variable NOPE is not set"):
        send_webhook(record, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ("run_finished", "finished: failed"),
        ("run_failed", "run r1 failed"),
        ("approval_requested", "waits for approval of gate"),
        ("approval_escalated", "escalated"),
        ("approval_timed_out", "timed out (rejected)"),
    ],
)
def test_summaries(event: str, words: str) -> None:
    data = {"event": event, "run_id": "r1", "workflow": "wf", "task": "gate"}
    assert words in summary({**data, "outcome": "failed", "decision": "rejected"})


def test_email_message_headers_and_body() -> None:
    target = {"from": "rf@example.org", "to": ["a@example.org", "b@example.org"]}
    record = _record("email", APPROVAL, target)
    message = email_message(record)
    assert message["To"] == "a@example.org, b@example.org"
    assert message["Message-ID"] == f"<{record.delivery_id}@reviewflow>"
    text = message.get_content()
    assert "approve: reviewflow approve r1 gate" in text and "https://rf.example/ui/runs/r1" in text
    assert body_of(record)["delivery_id"] == record.delivery_id


def test_a_webhook_is_the_signed_payload_with_its_event_and_delivery_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RF_HOOK_SECRET", SECRET)
    with Receiver(secret=SECRET) as receiver, httpx.Client() as client:
        payload = {"event": "run_failed", "run_id": "r1", "workflow": "wf"}
        target = {"url": receiver.url, "secret_env": "RF_HOOK_SECRET", "timeout": 5}
        record = _record("webhook", payload, target)
        send_webhook(record, client)
        [request] = receiver.requests
    assert request.signature_ok is True
    assert request.headers["X-Reviewflow-Event"] == "run_failed"
    assert request.headers["X-Reviewflow-Delivery"] == record.delivery_id
    assert request.json() == {**payload, "delivery_id": record.delivery_id} == body_of(record)


def test_a_slack_message_is_the_summary_in_bold_with_the_commands_as_code() -> None:
    with Receiver() as receiver, httpx.Client() as client:
        send_slack(_record("slack", APPROVAL, {"url": receiver.url, "timeout": 5}), client)
        [request] = receiver.requests
    message = request.json()
    assert message["text"] == (
        "*wf: run r1 waits for approval of gate*\n"
        "`approve: reviewflow approve r1 gate`\n"
        "`reject: reviewflow reject r1 gate`\n"
        "https://rf.example/ui/runs/r1"
    )
    assert message["blocks"][0]["text"] == {"type": "mrkdwn", "text": message["text"]}


@pytest.mark.parametrize(
    ("status", "permanent"),
    [("404", True), ("400", True), ("410", True), ("429", False), ("408", False), ("fail", False)],
)
def test_only_a_refusal_trying_again_cannot_change_is_permanent(
    status: str, permanent: bool
) -> None:
    with Receiver(then=status) as receiver, httpx.Client() as client:
        record = _record("webhook", {"event": "run_failed"}, {"url": receiver.url, "timeout": 5})
        with pytest.raises(SendError) as caught:
            send_webhook(record, client)
    code = "500" if status == "fail" else status
    assert str(caught.value).startswith(f"HTTP {code}")
    assert caught.value.permanent is permanent


def test_a_receiver_that_is_down_is_worth_trying_again() -> None:
    with httpx.Client() as client:
        record = _record("webhook", {"event": "run_failed"}, {"url": closed_port_url()})
        with pytest.raises(SendError, match="ConnectError") as caught:
            send_webhook(record, client)
    assert caught.value.permanent is False


def test_the_signature_is_over_the_exact_bytes_sent() -> None:
    """A receiver checks the body it got, before parsing it: one byte more fails the check."""
    body = json.dumps({"a": 1}, sort_keys=True).encode()
    assert signature(SECRET.encode(), body) == signature(SECRET, body)
    assert signature(SECRET, body) != signature(SECRET, body + b" ")


def test_a_receiver_that_does_not_answer_within_the_timeout_is_tried_again() -> None:
    with Receiver(then="hang") as receiver, httpx.Client() as client:
        record = _record("webhook", {"event": "run_failed"}, {"url": receiver.url, "timeout": 0.2})
        with pytest.raises(SendError, match=r"^timed out after 0\.2s") as caught:
            send_webhook(record, client)
    assert caught.value.permanent is False
