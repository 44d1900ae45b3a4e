"""How each kind of outbox row is sent: `SENDERS[kind](record, client)`.

A sender returns on success and raises SendError otherwise (`permanent` when trying again cannot
help, e.g. the receiver answered 404). Every send is bounded by the target's `timeout`. Secrets
(signing secret, Slack URL, SMTP password) are read from the environment here, at send time.

- webhook: POST of the payload as JSON, with X-Reviewflow-Event, X-Reviewflow-Delivery and, with
  `secret_env`, X-Reviewflow-Signature: sha256=<hex HMAC-SHA256 of the exact body>.
- slack: an incoming-webhook message (`text`, plus the same in a section block).
- email: a plain-text mail over SMTP (smtplib), Message-ID derived from the delivery id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import httpx

from ..errors import SendError as SendError
from ..store.outbox import OutboxRecord

USER_AGENT = "reviewflow-notifications"
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
"""4xx answers worth trying again (the rest of 4xx is a permanent refusal)."""


def signature(secret: str | bytes, body: bytes) -> str:
    """The X-Reviewflow-Signature value of `body`: `sha256=<hex HMAC-SHA256>`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _env(name: str, field: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SendError(f"{field}: environment variable {name} is not set")
    return value


def _url(target: dict[str, Any]) -> str:
    if target.get("url"):
        return str(target["url"])
    return _env(str(target["url_env"]), "url_env")


def body_of(record: OutboxRecord) -> dict[str, Any]:
    """The JSON document a webhook receives."""
    return {**record.data(), "delivery_id": record.delivery_id}


def _post(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> None:
    try:
        answer = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise SendError(f"timed out after {timeout:g}s ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise SendError(f"{type(exc).__name__}: {exc}") from exc
    if answer.is_success:
        return
    text = answer.text[:200].strip().replace("\n", " ")
    permanent = 400 <= answer.status_code < 500 and answer.status_code not in RETRYABLE_STATUS
    raise SendError(f"HTTP {answer.status_code}{': ' + text if text else ''}", permanent=permanent)


def send_webhook(record: OutboxRecord, client: httpx.Client) -> None:
    target = record.target_data()
    body = json.dumps(body_of(record), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Reviewflow-Event": str(record.data().get("event")),
        "X-Reviewflow-Delivery": record.delivery_id,
    }
    if target.get("secret_env"):
        headers["X-Reviewflow-Signature"] = signature(
            _env(target["secret_env"], "secret_env"), body
        )
    _post(client, _url(target), body, headers, float(target.get("timeout", 10.0)))


def summary(data: dict[str, Any]) -> str:
    """One line saying what happened (Slack text, email subject)."""
    run, workflow, event = data.get("run_id"), data.get("workflow"), data.get("event")
    task = data.get("task")
    if event == "run_finished":
        return f"{workflow}: run {run} finished: {data.get('outcome')}"
    if event == "run_failed":
        return f"{workflow}: run {run} failed"
    if event == "approval_requested":
        return f"{workflow}: run {run} waits for approval of {task}"
    if event == "approval_escalated":
        return f"{workflow}: approval of {task} in run {run} escalated"
    return f"{workflow}: approval of {task} in run {run} timed out ({data.get('decision')})"


def details(data: dict[str, Any]) -> list[str]:
    """The lines under the summary: error, detail, commands, link."""
    lines = []
    for key in ("error", "detail"):
        if data.get(key):
            lines.append(str(data[key]))
    for key in ("approve", "reject"):
        if data.get(key):
            lines.append(f"{key}: {data[key]}")
    if data.get("url"):
        lines.append(str(data["url"]))
    return lines


def send_slack(record: OutboxRecord, client: httpx.Client) -> None:
    target = record.target_data()
    data = record.data()
    lines = [f"`{d}`" if d.startswith(("approve: ", "reject: ")) else d for d in details(data)]
    text = "\n".join([f"*{summary(data)}*", *lines])
    message = {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }
    body = json.dumps(message).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    _post(client, _url(target), body, headers, float(target.get("timeout", 10.0)))


def email_message(record: OutboxRecord) -> EmailMessage:
    """The mail of an email notification (Message-ID from the delivery id: a receiver that
    sees it twice can drop the copy)."""
    target = record.target_data()
    data = record.data()
    message = EmailMessage()
    message["Subject"] = f"[reviewflow] {summary(data)}"
    message["From"] = target["from"]
    message["To"] = ", ".join(target["to"])
    message["Message-ID"] = f"<{record.delivery_id}@reviewflow>"
    message["X-Reviewflow-Event"] = str(data.get("event"))
    message["X-Reviewflow-Delivery"] = record.delivery_id
    body = [summary(data), "", *details(data), "", json.dumps(body_of(record), indent=2)]
    message.set_content("\n".join(body) + "\n")
    return message


def send_email(record: OutboxRecord, client: httpx.Client) -> None:
    target = record.target_data()
    tls = target.get("tls", "starttls")
    port = int(target.get("port") or {"implicit": 465, "starttls": 587}.get(tls, 25))
    timeout = float(target.get("timeout", 10.0))
    message = email_message(record)
    try:
        smtp: smtplib.SMTP
        if tls == "implicit":
            smtp = smtplib.SMTP_SSL(
                target["host"], port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(target["host"], port, timeout=timeout)
        with smtp:
            if tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if target.get("username"):
                password = (
                    _env(target["password_env"], "password_env")
                    if target.get("password_env")
                    else ""
                )
                smtp.login(target["username"], password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError(f"SMTP refused the recipients: {exc}", permanent=True) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"SMTP {type(exc).__name__}: {exc}") from exc


Sender = Callable[[OutboxRecord, httpx.Client], None]
SENDERS: dict[str, Sender] = {
    "webhook": send_webhook,
    "slack": send_slack,
    "email": send_email,
}
"""Row kind -> sender. A new kind of side effect (e.g. a GitHub check run) registers one."""
