"""Bearer tokens (read-write and read-only): who may read, who may change, and what is open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apihelpers import AUTH, RO, RO_AUTH, RW, Client, sh, workflow

from reviewflow.server.auth import TokenSet, parse_tokens, tokens_from_env, tokens_from_file

WF = json.dumps(workflow({"a": sh("true")}))
READS = [
    "/runs",
    "/runs/r1",
    "/runs/r1/events",
    "/runs/r1/graph",
    "/runs/r1/tasks/a/log",
    "/runs/r1/events/stream",
]
WRITES = [
    "/runs",
    "/runs/r1/cancel",
    "/runs/r1/pause",
    "/runs/r1/resume",
    "/runs/r1/tasks/a/approve",
    "/runs/r1/tasks/a/reject",
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {RW}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {RW}x"},
        {"Authorization": f"Bearer ro:{RO}"},
    ],
)
def test_no_token_or_a_wrong_one_is_401_everywhere(idle: Client, headers: dict[str, str]) -> None:
    for path in READS:
        resp = idle.get(path, headers=headers)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"
        assert set(resp.json()) == {"error", "field"}
    for path in WRITES:
        resp = idle.post(path, headers={**headers, "Content-Type": "application/json"}, content=WF)
        assert resp.status_code == 401, (path, resp.text)
    assert idle.get("/runs", headers=AUTH).json()["runs"] == []


def test_a_read_only_token_reads_but_may_not_change_anything(idle: Client) -> None:
    idle.submit(workflow({"a": sh("true")}), key="r1")
    for path in READS[:4]:
        assert idle.get(path, headers=RO_AUTH).status_code == 200, path
    for path in WRITES:
        resp = idle.post(path, headers={**RO_AUTH, "Content-Type": "application/json"}, content=WF)
        assert resp.status_code == 403, (path, resp.text)
        assert resp.json() == {"error": "this token is read-only", "field": None}
    assert idle.status("r1")["state"] == "pending"
    assert len(idle.get("/runs", headers=AUTH).json()["runs"]) == 1


def test_auth_comes_before_input_validation(idle: Client) -> None:
    assert idle.get("/runs/-bad", headers={}).status_code == 401
    assert idle.get("/runs", params={"limit": 0}).status_code == 401


def test_health_ready_metrics_and_openapi_are_open(idle: Client) -> None:
    for path in ("/health", "/ready", "/metrics", "/openapi.json"):
        assert idle.get(path).status_code == 200, path


def test_token_parsing_and_matching(tmp_path: Path) -> None:
    tokens = tokens_from_env(" a1 , ro:r2,, ro: r3 ,")
    assert [t.read_only for t in tokens] == [False, True, True]
    path = tmp_path / "tokens"
    path.write_text("# ops team\nw9\n\n  ro:r9  \n", encoding="utf-8")
    tokens += tokens_from_file(path)
    found = TokenSet(tokens)
    assert found.match("a1") is not None and not found.match("a1").read_only  # type: ignore[union-attr]
    assert found.match("r2").read_only  # type: ignore[union-attr]
    assert found.match("r3").read_only  # type: ignore[union-attr]
    assert found.match("r9").read_only  # type: ignore[union-attr]
    assert found.match("w9") is not None
    for wrong in ("", "ro:r2", "a", "a1 ", "# ops team"):
        assert found.match(wrong) is None, wrong
    assert parse_tokens(["ro:", "  "]) == []
