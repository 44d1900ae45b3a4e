"""From a template and a change to a workflow: the review's DAG is derived from the diff.

    change ─┬─ syntax ─ lint ─┬─ tests          (always; they skip when nothing applies)
            │                 └─ format
            ├─ security, secrets                (sensitive paths changed, or always)
            ├─ docs                             (the public API changed)
            ├─ dependencies                     (dependency files changed)
            ├─ performance                      (performance-critical paths changed)
            └─ ... ─ [verdict ─ approval] ─ summary   (after everything: verdict and reports;
                                                       no approval asked when checks failed)

A check left out keeps its place in the order: whatever needed it needs its own needs instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import validate_spec
from ..spec import WorkflowSpec
from .change import Change
from .template import CheckConfig, ReviewTemplate

RUNNER = "reviewflow.review.runner"
CHANGE_TASK = "change"
APPROVAL_TASK = "approval"
VERDICT_TASK = "verdict"
SUMMARY_TASK = "summary"


def included(template: ReviewTemplate, change: Change) -> dict[str, str]:
    """The checks this change gets, each with the reason it was included."""
    from .checks.api import public_api_changes
    from .checks.perf import critical_paths

    out: dict[str, str] = {}
    for name, check in template.checks.items():
        when = check.when
        if when == "always":
            out[name] = "always"
        elif when == "sensitive":
            hits = change.matching(template.sensitive_paths)
            if hits:
                out[name] = f"sensitive files changed: {', '.join(hits[:3])}"
        elif when == "dependencies":
            hits = change.matching(template.dependency_files)
            if hits:
                out[name] = f"dependency files changed: {', '.join(hits[:3])}"
        elif when == "public_api":
            exclude = check.options.get("exclude")
            api = public_api_changes(change, *([exclude] if exclude else []), at_least=3)
            if api:
                out[name] = f"public API changed: {', '.join(a.name for a in api[:3])}"
        elif when == "performance":
            # Without a benchmark command there is nothing to compare: not part of the review.
            hits = (
                critical_paths(change, check.options.get("paths"))
                if check.options.get("command")
                else []
            )
            if hits:
                out[name] = f"performance-critical paths changed: {', '.join(hits[:3])}"
    return out


def _needs(name: str, checks: dict[str, CheckConfig], chosen: dict[str, str]) -> list[str]:
    """Every included check `name` runs after, direct or not: a task sees only the results of
    its needs, and `tests` must see `syntax` (to skip on a syntax error) through `lint`."""
    out: list[str] = []
    stack = list(reversed(checks[name].needs))
    seen: set[str] = set()
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        if dep in chosen:
            out.append(dep)
        stack.extend(reversed(checks[dep].needs))
    return out


def build_review(
    template: ReviewTemplate,
    change: Change,
    *,
    out: Path,
    all_findings: bool = False,
    chosen: dict[str, str] | None = None,
    cache: bool = False,
    cache_exclude: tuple[str, ...] = (),
) -> WorkflowSpec:
    """The workflow that reviews `change` with `template`, writing its reports to `out`.

    `chosen` is `included(template, change)` when the caller computed it already (it diffs
    the public API against the base: one `git show` per changed Python file). With `cache`
    (and the template's `cache.enabled`), checks whose inputs did not change since an earlier
    review reuse its results; `cache_exclude` are paths of the repository that are not
    inputs of any check (the reports folder, the database)."""
    if chosen is None:
        chosen = included(template, change)
    caching: dict[str, Any] | None = None
    if cache and template.cache.enabled:
        caching = {
            "config": template.cache.model_dump(mode="json"),
            "exclude": list(cache_exclude),
        }
    tasks: dict[str, Any] = {
        CHANGE_TASK: {
            "type": "python",
            "call": f"{RUNNER}:change_result",
            "priority": "high",
            "timeout": 60,
            "retry": {"max_retries": 1},
            "params": {"change": change.model_dump(mode="json")},
            "description": f"the change: {len(change.files)} file(s) since {change.base_ref}",
        },
    }
    for name in template.checks:
        if name not in chosen:
            continue
        check = template.checks[name]
        tasks[name] = {
            "type": "python",
            "call": f"{RUNNER}:run_check",
            "needs": [CHANGE_TASK, *_needs(name, template.checks, chosen)],
            "timeout": check.timeout,
            "priority": check.priority,
            "retry": {"max_retries": check.retries},
            "params": {
                "check": check.uses or name,
                "options": check.options,
                "plugins": template.plugins,
                **({"cache": caching} if caching else {}),
            },
            "description": chosen[name],
        }
    last = [n for n in tasks if n != CHANGE_TASK] or [CHANGE_TASK]
    approval = template.approval
    if approval is not None and (not approval.paths or change.matching(approval.paths)):
        # No approval can override failed gates: when the checks already request changes,
        # the verdict task fails, the approval is skipped and the summary says so at once.
        tasks[VERDICT_TASK] = {
            "type": "python",
            "call": f"{RUNNER}:early_verdict",
            "needs": [CHANGE_TASK, *(n for n in last if n != CHANGE_TASK)],
            "trigger": "all_done",
            "priority": "high",
            "timeout": 300,
            "params": {
                "out": str(out),  # provisional reports: what the person is asked to approve
                "template": template.name,
                "gates": template.gates.model_dump(mode="json"),
                "all_findings": all_findings,
            },
            "description": "the checks' verdict, before anyone is asked to approve",
        }
        tasks[APPROVAL_TASK] = {
            "type": "approval",
            "needs": [VERDICT_TASK],
            "priority": "high",
            "timeout": approval.timeout,
            "on_timeout": approval.on_timeout,
            "params": {
                "approvers": approval.approvers,
                "escalate_to": approval.escalate_to,
                "prompt": approval.prompt,
            },
            "description": approval.prompt or "a person approves or rejects",
        }
        last = [*last, VERDICT_TASK, APPROVAL_TASK]
    tasks[SUMMARY_TASK] = {
        "type": "python",
        "call": f"{RUNNER}:summarize",
        "needs": last if CHANGE_TASK in last else [CHANGE_TASK, *last],
        "trigger": "all_done",
        "priority": "high",
        "timeout": 300,
        # A verdict is not retryable; a summary lost with its process is (reports are
        # rewritten whole).
        "retry": {"max_retries": 1},
        "params": {
            "out": str(out),
            "template": template.name,
            "gates": template.gates.model_dump(mode="json"),
            "all_findings": all_findings,
            **({"cache": caching} if caching else {}),
        },
        "description": "verdict and reports (report.md, report.json, report.sarif)",
    }
    return validate_spec(
        {
            "name": f"review-{template.name}",
            "description": template.description or None,
            "notifications": [t.stored() for t in template.notifications],
            "max_concurrency": template.max_concurrency,
            "timeout": template.timeout,
            "failure_policy": "continue",
            "tasks": tasks,
        },
        file=template.source,
    )
