"""The run page's graph: small workflows drawn task by task, a fan-out beyond the group limit
folded into one node with counts by state, edges kept between what is drawn."""

from __future__ import annotations

import json

from reviewflow.server.ui_graph import attempts_of, build_graph
from reviewflow.store import EventRecord, TaskRecord


def _spec(n: int) -> str:
    tasks = {"setup": {"type": "shell"}}
    for i in range(n):
        tasks[f"shard-{i}"] = {"type": "shell", "needs": ["setup"]}
    tasks["report"] = {"type": "python", "needs": [f"shard-{i}" for i in range(n)]}
    return json.dumps({"name": "w", "tasks": tasks, "on_failure": {"notify": {"type": "shell"}}})


def test_small_fan_out_is_drawn_task_by_task() -> None:
    graph = build_graph(_spec(3), [TaskRecord("r", "setup", "succeeded")])
    names = [n["name"] for n in graph["nodes"]]
    assert names == ["setup", "shard-0", "shard-1", "shard-2", "report", "notify"]
    assert graph["nodes"][0]["state"] == "succeeded"
    assert graph["nodes"][1]["state"] == "blocked"  # no row yet
    assert graph["nodes"][-1]["on_failure"] is True
    assert len(graph["edges"]) == 6
    assert graph["members"] == {}


def test_ten_thousand_siblings_become_one_group_with_counts() -> None:
    tasks = [
        TaskRecord("r", f"shard-{i}", "succeeded" if i < 7000 else "running") for i in range(10_000)
    ]
    graph = build_graph(_spec(10_000), tasks)
    groups = [n for n in graph["nodes"] if n.get("group")]
    assert len(groups) == 1
    group = groups[0]
    assert group["count"] == 10_000
    assert group["states"] == {"succeeded": 7000, "running": 3000}
    assert len(graph["nodes"]) == 4  # setup, the group, report, notify
    gid = group["id"]
    assert graph["members"]["shard-9999"] == gid
    ids = {n.get("name"): n["id"] for n in graph["nodes"]}
    assert sorted(map(tuple, graph["edges"])) == sorted([(ids["setup"], gid), (gid, ids["report"])])


def test_attempts_from_events() -> None:
    ev = [
        EventRecord(1, "r", "t", "ready", "running", 1, 10.0, None),
        EventRecord(2, "r", "t", "running", "retry_wait", 1, 12.5, "exit code 3 (log: x)"),
        EventRecord(3, "r", "u", "ready", "running", 1, 13.0, None),
        EventRecord(4, "r", "t", "ready", "running", 2, 14.0, None),
    ]
    attempts = attempts_of(ev, "t")
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["duration_s"] == 2.5 and attempts[0]["outcome"] == "retry_wait"
    assert attempts[1]["ended_at"] is None and attempts[1]["outcome"] == "running"
