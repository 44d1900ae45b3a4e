"""Mermaid renderings of a workflow (its DAG) or of a run (nodes coloured by state)."""

from __future__ import annotations

from collections.abc import Mapping

from .spec import WorkflowSpec

STATE_STYLES: dict[str, str] = {
    "blocked": "fill:#eeeeee,stroke:#999999,color:#333333",
    "ready": "fill:#ddf4ff,stroke:#0969da,color:#0a3069",
    "running": "fill:#fff8c5,stroke:#bf8700,color:#4d2d00",
    "retry_wait": "fill:#fff1e5,stroke:#bc4c00,color:#3d1300",
    "timed_out": "fill:#ffebe9,stroke:#cf222e,color:#5c0011",
    "succeeded": "fill:#dafbe1,stroke:#1a7f37,color:#044f1e",
    "failed": "fill:#ffebe9,stroke:#cf222e,color:#82071e",
    "cancelled": "fill:#f6f8fa,stroke:#57606a,color:#57606a",
    "skipped": "fill:#f6f8fa,stroke:#8c959f,color:#59636e,stroke-dasharray:4 3",
}


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(spec: WorkflowSpec, states: Mapping[str, str] | None = None) -> str:
    """A `flowchart TD`; with `states`, each node shows and is styled by its task's state."""
    ids: dict[str, str] = {}
    lines = ["flowchart TD"]
    all_tasks = [*spec.tasks.values(), *spec.on_failure.values()]
    for i, task in enumerate(all_tasks):
        ids[task.name] = f"t{i}"
    for task in all_tasks:
        label = task.name
        state = states.get(task.name) if states else None
        if state:
            label = f"{task.name}<br/><small>{state}</small>"
        shape = ('(["', '"])') if task.name in spec.on_failure else ('["', '"]')
        node = f"    {ids[task.name]}{shape[0]}{_label(label)}{shape[1]}"
        if state:
            node += f":::{state}"
        lines.append(node)
    for task in all_tasks:
        for dep in task.needs:
            lines.append(f"    {ids[dep]} --> {ids[task.name]}")
    if spec.on_failure:
        lines.append("    %% rounded nodes run only when the run fails (on_failure)")
    if states:
        for state in sorted(set(states.values())):
            style = STATE_STYLES.get(state)
            if style:
                lines.append(f"    classDef {state} {style}")
    return "\n".join(lines) + "\n"
