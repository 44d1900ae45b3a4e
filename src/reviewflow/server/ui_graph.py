"""The run page's graph: the DAG as nodes and edges, with big fan-outs folded into groups.

A browser cannot lay out and draw 10,000 nodes in the 2 s the run page has, and nobody reads
them one by one: tasks that share the same dependencies and the same dependents (a fan-out of
one test shard per file, say) are drawn as one group node with its counts by state once there
are more than `group_limit` of them. Everything here is O(tasks + edges).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from ..diagram import STATE_STYLES

GROUP_LIMIT = 300


def state_styles() -> dict[str, dict[str, str]]:
    """diagram.STATE_STYLES (the Mermaid report colours) as {state: {fill, stroke, color}}."""
    out: dict[str, dict[str, str]] = {}
    for state, style in STATE_STYLES.items():
        pairs = (item.split(":", 1) for item in style.split(","))
        out[state] = {k: v for k, v in pairs if k in ("fill", "stroke", "color")}
    return out


def build_graph(
    spec_json: str | dict[str, Any], tasks: list[Any], group_limit: int = GROUP_LIMIT
) -> dict[str, Any]:
    """{nodes, edges, members}: a node is a task (`id` "t<i>") or a group (`id` "g<i>", with
    `count`, `states` and `sample` names); `members` maps each grouped task to its group.
    `spec_json` is the run's spec (JSON, or already parsed); `tasks` have `name` and `state`."""
    spec = json.loads(spec_json) if isinstance(spec_json, str) else spec_json
    bodies: dict[str, dict[str, Any]] = {**spec.get("tasks", {})}
    on_failure = set(spec.get("on_failure", {}))
    bodies.update(spec.get("on_failure", {}))
    state = {t.name: t.state for t in tasks}
    needs = {name: list(body.get("needs") or []) for name, body in bodies.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for name, deps in needs.items():
        for dep in deps:
            dependents[dep].append(name)
    by_key: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for name in bodies:
        key = (tuple(sorted(needs[name])), tuple(sorted(dependents[name])), name in on_failure)
        by_key[key].append(name)
    node_of: dict[str, str] = {}
    members: dict[str, str] = {}
    nodes: list[dict[str, Any]] = []
    groups = 0
    for names in by_key.values():
        if len(names) <= group_limit:
            continue
        gid = f"g{groups}"
        groups += 1
        counts = Counter(state.get(n, "blocked") for n in names)
        nodes.append(
            {
                "id": gid,
                "group": True,
                "count": len(names),
                "states": dict(counts),
                "sample": names[:3],
            }
        )
        for n in names:
            node_of[n] = gid
            members[n] = gid
    for i, (name, body) in enumerate(bodies.items()):
        if name in node_of:
            continue
        node_of[name] = f"t{i}"
        nodes.append(
            {
                "id": f"t{i}",
                "name": name,
                "state": state.get(name, "blocked"),
                "type": body.get("type", "python"),
                "on_failure": name in on_failure,
            }
        )
    edges = sorted({(node_of[dep], node_of[name]) for name, deps in needs.items() for dep in deps})
    return {"nodes": nodes, "edges": [list(e) for e in edges], "members": members}


def attempts_of(events: list[Any], task: str) -> list[dict[str, Any]]:
    """The task's attempts from its events: start, end, duration, how it ended and why."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for ev in events:
        if ev.task != task:
            continue
        if ev.to_state == "running" and ev.from_state != "running":
            current = {"attempt": ev.attempt, "started_at": ev.at, "ended_at": None}
            current.update(duration_s=None, outcome="running", detail=None)
            out.append(current)
        elif current is not None and ev.from_state == "running" and ev.to_state != "running":
            current.update(
                ended_at=ev.at,
                duration_s=round(ev.at - current["started_at"], 3),
                outcome=ev.to_state,
                detail=ev.detail,
            )
            current = None
    return out
