"""Mermaid renderings (reviewflow.diagram): one node per task, one edge per dependency, and state
classes for a run."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewflow.config import validate_spec
from reviewflow.diagram import STATE_STYLES, mermaid
from reviewflow.spec import WorkflowSpec

NODE = re.compile(r'^    (t\d+)(?:\["|\(\[")(.*?)(?:"\]|"\]\))(?::::(\w+))?$')
EDGE = re.compile(r"^    (t\d+) --> (t\d+)$")


def parse(chart: str) -> tuple[dict[str, tuple[str, str | None]], list[tuple[str, str]], list[str]]:
    """(node id -> (label, class), edges, classDef lines) of a chart."""
    lines = chart.splitlines()
    assert lines[0] == "flowchart TD"
    assert chart.endswith("\n")
    nodes: dict[str, tuple[str, str | None]] = {}
    edges: list[tuple[str, str]] = []
    class_defs: list[str] = []
    for line in lines[1:]:
        if m := NODE.match(line):
            assert m.group(1) not in nodes, line
            nodes[m.group(1)] = (m.group(2), m.group(3))
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        elif line.startswith("    classDef "):
            class_defs.append(line)
        else:
            assert line.startswith("    %%"), f"unexpected line {line!r}"
    return nodes, edges, class_defs


def name_of(label: str) -> str:
    return label.split("<br/>")[0]


def spec_from(
    needs: dict[str, list[str]], hooks: dict[str, list[str]] | None = None
) -> WorkflowSpec:
    def body(deps: list[str]) -> dict[str, Any]:
        return {"run": ["true"], "needs": deps}

    data: dict[str, Any] = {"name": "wf", "tasks": {n: body(d) for n, d in needs.items()}}
    if hooks:
        data["on_failure"] = {n: body(d) for n, d in hooks.items()}
    return validate_spec(data)


REVIEW = {
    "syntax": [],
    "lint": ["syntax"],
    "tests": ["syntax"],
    "security": [],
    "docs": [],
    "summary": ["lint", "tests", "security", "docs"],
}


def check_structure(spec: WorkflowSpec, chart: str) -> dict[str, tuple[str, str | None]]:
    nodes, edges, _ = parse(chart)
    all_tasks = {**spec.tasks, **spec.on_failure}
    names = {nid: name_of(label) for nid, (label, _) in nodes.items()}
    assert sorted(names.values()) == sorted(all_tasks)
    expected_edges = sorted((dep, t.name) for t in all_tasks.values() for dep in t.needs)
    assert sorted((names[a], names[b]) for a, b in edges) == expected_edges
    assert len(edges) == sum(len(t.needs) for t in all_tasks.values())
    return nodes


def test_one_node_per_task_and_one_edge_per_dependency() -> None:
    spec = spec_from(REVIEW)
    chart = mermaid(spec)
    nodes = check_structure(spec, chart)
    assert all(cls is None for _, cls in nodes.values())
    assert "classDef" not in chart
    assert ":::" not in chart


def test_on_failure_tasks_are_rounded_nodes() -> None:
    spec = spec_from({"a": []}, hooks={"notify": [], "cleanup": ["notify"]})
    chart = mermaid(spec)
    check_structure(spec, chart)
    assert re.search(r'^    t\d+\(\["notify"\]\)$', chart, re.M)
    assert re.search(r'^    t\d+\["a"\]$', chart, re.M)
    assert "on_failure" in chart


def test_states_colour_every_node_and_define_its_classes() -> None:
    spec = spec_from(REVIEW)
    states = {
        "syntax": "succeeded",
        "lint": "failed",
        "tests": "running",
        "security": "retry_wait",
        "docs": "succeeded",
        "summary": "blocked",
    }
    chart = mermaid(spec, states)
    nodes, _, class_defs = parse(chart)
    check_structure(spec, chart)
    for label, cls in nodes.values():
        name = name_of(label)
        assert cls == states[name]
        assert label == f"{name}<br/><small>{states[name]}</small>"
    assert sorted(class_defs) == sorted(
        f"    classDef {s} {STATE_STYLES[s]}" for s in set(states.values())
    )


def test_every_state_has_a_style() -> None:
    from reviewflow.states import TaskState

    assert set(STATE_STYLES) == {s.value for s in TaskState}


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    n = draw(st.integers(1, 12))
    names = [f"task_{i}" for i in range(n)]
    return {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i, name in enumerate(names)
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.data())
def test_random_dags_render_all_nodes_and_edges(needs: dict[str, list[str]], data: Any) -> None:
    spec = spec_from(needs)
    check_structure(spec, mermaid(spec))
    states = {n: data.draw(st.sampled_from(sorted(STATE_STYLES))) for n in needs}
    nodes, _, class_defs = parse(mermaid(spec, states))
    assert {name_of(label): cls for label, cls in nodes.values()} == states
    assert len(class_defs) == len(set(states.values()))
