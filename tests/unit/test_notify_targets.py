"""`notifications:` targets (validation, the server's file format), how a review template
passes its targets on, and how the store finds a run's targets in its stored spec. What each
sender sends: test_notify_senders.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reviewflow.config import validate_spec
from reviewflow.errors import SpecError
from reviewflow.notify.targets import EVENTS, NotificationTarget, load_targets
from reviewflow.store import outbox

BASE = {"name": "wf", "tasks": {"a": {"run": ["true"]}}}


def _spec(*targets: dict) -> dict:
    return {**BASE, "notifications": list(targets)}


def test_defaults_and_the_stored_form() -> None:
    spec = validate_spec(_spec({"kind": "webhook", "url": "https://h.example/x"}))
    (target,) = spec.notifications
    assert target.events == list(EVENTS) and target.timeout == 10.0
    assert target.retry_for == 24 * 3600
    mail = NotificationTarget.model_validate(
        {"kind": "email", "host": "smtp", "from": "a@example.org", "to": ["b@example.org"]}
    )
    assert mail.stored()["from"] == "a@example.org"


@pytest.mark.parametrize(
    ("target", "field", "words"),
    [
        ({"kind": "webhook", "url": "file:///etc/passwd"}, "url", "http"),
        ({"kind": "webhook", "url": "https://:pw@h.example/"}, "url", "credentials"),
        ({"kind": "webhook", "url": "https:///x"}, "url", "no host"),
        ({"kind": "webhook", "url": "https://h:99999/"}, "url", "invalid URL"),
        ({"kind": "webhook", "url": "https://h/", "url_env": "U"}, "url", "exactly one"),
        ({"kind": "webhook", "url": "https://h/", "to": ["a@b.c"]}, "to", "email"),
        ({"kind": "webhook", "url": "https://h/", "from": "a@b.c"}, "from", "email"),
        ({"kind": "slack", "url": "https://h/", "secret_env": "S"}, "secret_env", "signed"),
        ({"kind": "email", "url": "https://h/"}, "url", "webhook and slack"),
        ({"kind": "email", "from": "a@b.c", "to": ["c@d.e"]}, "host", "needs host"),
        ({"kind": "email", "host": "h", "from": "a@b.c"}, "to", "needs to"),
        ({"kind": "email", "host": "h", "from": "nobody", "to": ["c@d.e"]}, "from", "email"),
        ({"kind": "webhook", "url": "https://h/", "events": []}, "events", "at least 1"),
        ({"kind": "webhook", "url": "https://h/", "timeout": "5m"}, "timeout", "60"),
        ({"kind": "webhook", "url_env": "not a name"}, "url_env", "variable name"),
    ],
)
def test_bad_targets_name_their_field(target: dict, field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(_spec(target))
    assert caught.value.field == f"notifications.0.{field}"
    assert words in caught.value.message


def test_the_servers_file_takes_a_list_or_a_mapping() -> None:
    one = {"kind": "slack", "url_env": "SLACK_URL"}
    assert load_targets([one])[0].url_env == "SLACK_URL"
    assert load_targets({"notifications": [one]})[0].kind == "slack"
    with pytest.raises(SpecError, match="a list of targets"):
        load_targets({"kind": "slack"}, file="n.yaml")
    with pytest.raises(SpecError) as caught:
        load_targets([{"kind": "slack"}], file="n.yaml")
    assert caught.value.file == "n.yaml" and caught.value.field == "notifications.0.url"


# ------------------------------------------------------------------ the stored spec


def test_the_store_reads_only_the_targets_of_a_stored_spec() -> None:
    spec = validate_spec(
        {
            **_spec({"kind": "webhook", "url": "https://h/", "events": ["run_failed"]}),
            "tasks": {"a": {"run": ["true"], "params": {"notifications": [{"kind": "x"}]}}},
        }
    )
    config = json.loads(outbox.notify_config(spec.model_dump_json(), "wf", {"db": "x.db"}) or "")
    assert config["workflow"] == "wf" and config["db"] == "x.db"
    assert [t["url"] for t in config["targets"]] == ["https://h/"]
    plain = validate_spec(BASE).model_dump_json()
    assert outbox.notify_config(plain, "wf") is None
    extra = {"targets": [{"kind": "slack", "url": "https://s/", "events": ["run_finished"]}]}
    assert len(json.loads(outbox.notify_config(plain, "wf", extra) or "")["targets"]) == 1


def test_only_approval_notes_and_run_events_are_looked_at() -> None:
    run = ("r", None, "running", "succeeded", None, 1.0, None)
    note = ("r", "t", "running", "running", 1, 1.0, "a progress note")
    asked = ("r", "t", "running", "running", 1, 1.0, "waiting for approval: reviewflow approve r t")
    assert outbox.relevant(run) and outbox.relevant(asked) and not outbox.relevant(note)
    assert outbox.notify_event(note) == []
    assert outbox.notify_event(("r", None, None, "running", None, 1.0, None)) == []


# ------------------------------------------------------------------ templates


def test_a_review_templates_targets_reach_its_workflow(tmp_path: Path) -> None:
    from reviewflow.review.builder import build_review
    from reviewflow.review.change import EMPTY_TREE, Change
    from reviewflow.review.template import load_template

    path = tmp_path / "t.yaml"
    path.write_text(
        "name: mine\nextends: pr\nnotifications:\n"
        "  - {kind: webhook, url: 'https://hooks.example/r', events: [run_finished]}\n"
    )
    template = load_template(str(path))
    change = Change(
        root=str(tmp_path), base=EMPTY_TREE, base_ref="t", head=None, dirty=True, files=[]
    )
    spec = build_review(template, change, out=tmp_path / "out")
    assert [t.url for t in spec.notifications] == ["https://hooks.example/r"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nextends: pr\nnotifications:\n  - {kind: webhook, url: 'ftp://x'}\n")
    with pytest.raises(SpecError, match="http"):
        load_template(str(bad))
