"""GET /runs/{id}/events/stream: server-sent events of a run until it ends."""

from __future__ import annotations

import json
from typing import Any

from apihelpers import AUTH, AppFactory, Client, sh, workflow


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Messages of an event stream: {"id", "event", "data"} or {"comment"}."""
    out: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        msg: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                msg["comment"] = line[1:].strip()
            else:
                key, _, value = line.partition(": ")
                msg[key] = json.loads(value) if key == "data" else value
        out.append(msg)
    return out


def read_stream(client: Client, run_id: str, **headers: str) -> list[dict[str, Any]]:
    with client.stream("GET", f"/runs/{run_id}/events/stream", headers={**AUTH, **headers}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["cache-control"] == "no-cache"
        return parse_sse(resp.read().decode())


def test_the_stream_carries_every_transition_then_ends(make_client: AppFactory) -> None:
    client = make_client(sse_keepalive=0.1)
    run_id = client.submit(workflow({"a": sh("sleep 0.5"), "b": sh("true", needs=["a"])}))
    messages = read_stream(client, run_id)
    transitions = [m for m in messages if m.get("event") == "transition"]
    stored = client.get(f"/runs/{run_id}/events", headers=AUTH).json()
    assert [m["data"] for m in transitions] == stored
    assert [int(m["id"]) for m in transitions] == [e["id"] for e in stored]
    assert messages[-1]["event"] == "end"
    assert messages[-1]["data"] == {"run_id": run_id, "state": "succeeded"}
    assert {"comment": "keep-alive"} in messages  # the run was quiet for 0.5 s

    middle = stored[len(stored) // 2]["id"]
    resumed = read_stream(client, run_id, **{"Last-Event-ID": str(middle)})
    ids = [int(m["id"]) for m in resumed if m.get("event") == "transition"]
    assert ids == [e["id"] for e in stored if e["id"] > middle]
    with client.stream(
        "GET", f"/runs/{run_id}/events/stream", params={"after": middle}, headers=AUTH
    ) as resp:
        after = parse_sse(resp.read().decode())
    assert [m for m in after if "id" in m] == [m for m in resumed if "id" in m]


def test_a_bad_last_event_id_is_422(client: Client) -> None:
    run_id = client.submit(workflow({"a": sh("true")}))
    resp = client.get(f"/runs/{run_id}/events/stream", headers={**AUTH, "Last-Event-ID": "abc"})
    assert resp.status_code == 422 and resp.json()["field"] == "Last-Event-ID"


def test_a_stream_closes_after_its_longest_time(make_client: AppFactory) -> None:
    client = make_client(execute=False, sse_max=0.3)
    run_id = client.submit(workflow({"a": sh("true")}))  # pending: nothing executes it
    messages = read_stream(client, run_id)
    assert [m.get("event") for m in messages if "comment" not in m] == ["transition"]
