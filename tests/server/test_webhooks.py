"""POST /webhooks/github: signed pull_request events start one review run per PR head."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from apihelpers import AUTH, SECRET, AppFactory, Client

from reviewflow.server.review_run import review_run_id

HEAD, BASE = "1" * 40, "2" * 40
PAYLOAD: dict[str, Any] = {
    "action": "opened",
    "number": 42,
    "repository": {"full_name": "octo/widgets"},
    "pull_request": {
        "number": 42,
        "head": {"sha": HEAD, "repo": {"clone_url": "https://github.com/fork/widgets.git"}},
        "base": {"sha": BASE, "repo": {"clone_url": "https://github.com/octo/widgets.git"}},
    },
}


def deliver(
    client: Client,
    payload: Any,
    *,
    event: str = "pull_request",
    secret: str | None = SECRET,
    signature: str | None = None,
    delivery: str = "d-1",
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    if signature is None and secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        signature = f"sha256={digest}"
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhooks/github", content=body, headers=headers)


def runs(client: Client) -> list[dict[str, Any]]:
    return list(client.get("/runs", headers=AUTH).json()["runs"])


def test_an_opened_pr_starts_one_review_run_and_a_redelivery_finds_it(idle: Client) -> None:
    resp = deliver(idle, PAYLOAD)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["run_id"]
    assert resp.json() == {"run_id": run_id, "created": True, "ignored": None}
    assert run_id == review_run_id("octo/widgets", 42, HEAD) == f"gh-octo.widgets-pr42-{HEAD}"
    listed = idle.get(
        "/runs",
        params=[("meta", "repo=octo/widgets"), ("meta", "pr=42"), ("meta", f"sha={HEAD}")],
        headers=AUTH,
    ).json()["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert listed[0]["workflow"] == "review-pr"
    assert listed[0]["meta"]["base"] == BASE

    again = deliver(idle, PAYLOAD, delivery="d-2")
    assert again.status_code == 202
    assert again.json() == {"run_id": run_id, "created": False, "ignored": None}
    assert len(runs(idle)) == 1
    events = idle.get(f"/runs/{run_id}/events", headers=AUTH).json()
    assert len(events) == 1  # only "pending": nothing else started

    pushed = copy.deepcopy(PAYLOAD)
    pushed["action"], pushed["pull_request"]["head"]["sha"] = "synchronize", "3" * 40
    assert deliver(idle, pushed).json()["created"] is True
    assert len(runs(idle)) == 2
    metrics = idle.get("/metrics").text
    assert 'reviewflow_webhook_deliveries_total{outcome="created"} 2.0' in metrics
    assert 'reviewflow_webhook_deliveries_total{outcome="redelivered"} 1.0' in metrics


def test_the_review_run_fetches_by_sha_with_argv_only(idle: Client, tmp_path: Path) -> None:
    run_id = deliver(idle, PAYLOAD).json()["run_id"]
    store = idle.app.state.rf.store  # type: ignore[attr-defined]
    spec = json.loads(store.get_run(run_id).spec)
    repo = str(tmp_path / "work" / run_id / "repo")
    tasks = spec["tasks"]
    assert tasks["init"]["run"] == ["git", "init", "--quiet", repo]
    assert tasks["fetch-base"]["run"][-2:] == ["https://github.com/octo/widgets.git", BASE]
    assert tasks["fetch-head"]["run"][-2:] == ["https://github.com/fork/widgets.git", HEAD]
    assert tasks["fetch-head"]["run"][5:8] == ["--no-tags", "--depth", "1"]
    assert tasks["review"]["run"][1:5] == ["review", repo, "--base", BASE]
    assert all(t["type"] == "shell" for t in tasks.values())


def test_with_post_back_the_run_reports_to_github_and_the_review_gets_no_token(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "server-token")
    client = make_client(execute=False, public_url="https://rf.example/")
    run_id = deliver(client, PAYLOAD).json()["run_id"]
    spec = json.loads(client.app.state.rf.store.get_run(run_id).spec)  # type: ignore[attr-defined]
    tasks = spec["tasks"]
    start, finish, comment = tasks["check-start"], tasks["check-finish"], tasks["comment"]
    assert start["run"][1:7] == ["github", "check", "--repo", "octo/widgets", "--sha", HEAD]
    assert f"https://rf.example/ui/runs/{run_id}" in start["run"]
    assert "--in-progress" in start["run"]
    assert finish["needs"] == ["review", "check-start"] and finish["trigger"] == "all_done"
    assert comment["run"][1:7] == ["github", "comment", "--repo", "octo/widgets", "--pr", "42"]
    assert spec["failure_policy"] == "continue"
    # The PR's code runs in the review task: GitHub credentials are blanked there, and the
    # fetches get them only through git's credential helper (no token in the spec at all).
    assert tasks["review"]["env"]["GITHUB_TOKEN"] == ""
    assert tasks["fetch-head"]["env"]["GIT_CONFIG_KEY_0"] == "credential.https://github.com.helper"
    assert "server-token" not in json.dumps(spec)
    # Without credentials (or with --no-github-post-back) nothing is posted.
    quiet = make_client(execute=False, github_post_back=False)
    other = deliver(
        quiet, {**PAYLOAD, "number": 43, "pull_request": {**PAYLOAD["pull_request"], "number": 43}}
    ).json()["run_id"]
    spec = json.loads(quiet.app.state.rf.store.get_run(other).spec)  # type: ignore[attr-defined]
    assert not {"check-start", "check-finish", "comment"} & set(spec["tasks"])


@pytest.mark.parametrize(
    ("signature", "secret"),
    [
        (None, None),  # missing
        ("sha256=" + "0" * 64, None),  # wrong
        ("sha1=abc", None),  # wrong algorithm
        (None, "another-secret"),  # signed with another secret
    ],
)
def test_a_bad_or_missing_signature_is_401_and_stores_nothing(
    idle: Client, signature: str | None, secret: str | None
) -> None:
    resp = deliver(idle, PAYLOAD, signature=signature, secret=secret)
    assert resp.status_code == 401, resp.text
    assert resp.json()["field"] == "X-Hub-Signature-256"
    assert runs(idle) == []


def test_without_a_secret_the_webhook_answers_503(make_client: AppFactory) -> None:
    client = make_client(execute=False, secret=None)
    with client.allow(503):
        resp = deliver(client, PAYLOAD)
        assert resp.status_code == 503
        assert "REVIEWFLOW_WEBHOOK_SECRET" in resp.json()["error"]
        assert deliver(client, PAYLOAD, secret="").status_code == 503
    assert runs(client) == []


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("push", "opened"),
        ("ping", None),
        ("issues", "opened"),
        ("pull_request", "closed"),
        ("pull_request", "labeled"),
        ("pull_request", None),
    ],
)
def test_other_events_and_actions_are_ignored(idle: Client, event: str, action: str | None) -> None:
    payload = {**PAYLOAD, "action": action}
    resp = deliver(idle, payload, event=event)
    assert resp.status_code == 202
    assert resp.json()["run_id"] is None and resp.json()["ignored"]
    assert runs(idle) == []


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("pull_request", "head", "sha"), "abc", "pull_request.head.sha"),
        (("pull_request", "head", "sha"), None, "pull_request.head.sha"),
        (("pull_request", "base", "sha"), "z" * 40, "pull_request.base.sha"),
        (
            ("pull_request", "head", "repo", "clone_url"),
            "git://github.com/o/r",
            "pull_request.head.repo.clone_url",
        ),
        (
            ("pull_request", "head", "repo", "clone_url"),
            "https://github.com/o/r;rm -rf /",
            "pull_request.head.repo.clone_url",
        ),
        (
            ("pull_request", "head", "repo", "clone_url"),
            "file:///etc",
            "pull_request.head.repo.clone_url",
        ),
        (("pull_request", "head", "repo"), None, "pull_request.head.repo.clone_url"),
        (("pull_request", "number"), "42", "pull_request.number"),
        (("pull_request", "number"), 10**100, "pull_request.number"),
        (("repository", "full_name"), 5, "repository.full_name"),
    ],
)
def test_a_malformed_pull_request_is_422(
    idle: Client, path: tuple[str, ...], value: Any, field: str
) -> None:
    payload = copy.deepcopy(PAYLOAD)
    node = payload
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    resp = deliver(idle, payload)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field
    assert runs(idle) == []
    resp = deliver(idle, b"{not json")
    assert resp.status_code == 422 and resp.json()["field"] == "body"


def test_only_allowed_repositories_are_reviewed(make_client: AppFactory) -> None:
    client = make_client(execute=False, webhook_repos=["Octo/Other"])
    resp = deliver(client, PAYLOAD)
    assert resp.status_code == 202 and "not in" in resp.json()["ignored"]
    assert runs(client) == []
