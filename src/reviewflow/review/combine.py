"""One verdict for several reviews run as tasks of one workflow (examples/review.yaml).

Each review is a `reviewflow review --template T --out DIR` shell task; it writes its own
report.json (already masked). A `trigger: all_done` task calling `summarize` reads them all and
writes summary.md in the run's folder, so the reader sees every template's verdict in one place
even when one review requested changes or never finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TaskFailed

if TYPE_CHECKING:
    from ..executors.base import TaskContext

NOT_FINISHED = "not finished"
_ORDER = ("approve", "comment", NOT_FINISHED, "request_changes")
"""Worst last: a review that could not finish is no pass, but it is not a finding either."""


def summarize(ctx: TaskContext) -> dict[str, Any]:
    """Read each review's report.json and write `<run dir>/summary.md`.

    params: `reviews`, a mapping {task name: that task's --out folder} (relative to where
    `reviewflow run` started). A report older than its task's last attempt is from an earlier
    run and is not read: a review that failed before writing would otherwise look like a pass.
    """
    reviews = ctx.params.get("reviews")
    if not isinstance(reviews, dict) or not reviews:
        raise TaskFailed(
            "params.reviews: expected a mapping {task: --out folder}, got "
            f"{type(reviews).__name__}",
            retryable=False,
        )
    view = ctx.run_view() if ctx.run_view is not None else {}
    found: dict[str, dict[str, Any]] = {}
    for task, folder in reviews.items():
        found[str(task)] = _read(Path(str(folder)) / "report.json", view.get(str(task), {}))
        if task in ctx.failures and found[str(task)]["verdict"] == NOT_FINISHED:
            attempts = view.get(str(task), {}).get("attempts") or 1
            said = _error_line(ctx.run_dir / f"{task}.{attempts}.log")
            found[str(task)]["reasons"] = [ctx.failures[task] + (f": {said}" if said else "")]
    verdict = max((r["verdict"] for r in found.values()), key=_ORDER.index)
    report = ctx.run_dir / "summary.md"
    report.write_text(_markdown(verdict, found), encoding="utf-8")
    return {"verdict": verdict, "reviews": found, "report": str(report)}


def _read(path: Path, task: dict[str, Any]) -> dict[str, Any]:
    started = task.get("started_at")
    try:
        if started is not None and path.stat().st_mtime < float(started):
            raise FileNotFoundError(path)
        doc = json.loads(path.read_text(encoding="utf-8"))
        verdict = doc["verdict"]
        if verdict not in _ORDER:
            raise ValueError(verdict)
    except (OSError, ValueError, KeyError, TypeError):
        why = "no report.json from this run" if task.get("state") != "skipped" else "not run"
        return {"verdict": NOT_FINISHED, "reasons": [why], "report": None}
    counts = doc.get("counts") if isinstance(doc.get("counts"), dict) else {}
    return {
        "verdict": verdict,
        "template": doc.get("template"),
        "reasons": list(doc.get("reasons") or []),
        "errors": counts.get("error", 0),
        "warnings": counts.get("warning", 0),
        "report": str(path.with_name("report.md")),
        "change": _change(doc.get("change")),
    }


def _error_line(log: Path) -> str:
    """The one-line `error: ...` a review ends with when it could not start (bad path, bad
    template): the reason worth showing, rather than only a log's name."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4096))
            lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    last = lines[-1].strip() if lines else ""
    return last[:500] if last.startswith("error: ") else ""


def _change(change: Any) -> str:
    """`main (1a2b3c4d5e6f) .. 9f8e7d6c5b4a`: what the review compared."""
    if not isinstance(change, dict):
        return ""
    base, head = str(change.get("base") or "")[:12], str(change.get("head") or "")[:12]
    text = f"{change.get('base_ref') or base} ({base}) .. {head or 'no commit'}"
    return text + (" + uncommitted changes" if change.get("dirty") else "")


def _markdown(verdict: str, found: dict[str, dict[str, Any]]) -> str:
    lines = [f"# Review summary: {verdict}", ""]
    changes = sorted({r["change"] for r in found.values() if r.get("change")})
    lines += [f"Change: {c}" for c in changes] + ([""] if changes else [])
    lines += ["| review | verdict | errors | warnings | report |", "|---|---|---|---|---|"]
    for name, r in found.items():
        report = f"`{r['report']}`" if r["report"] else "-"
        lines.append(
            f"| {name} | {r['verdict']} | {r.get('errors', '-')} | {r.get('warnings', '-')} "
            f"| {report} |"
        )
    for name, r in found.items():
        if r["reasons"]:
            lines += ["", f"## {name}: {r['verdict']}", ""]
            lines += [f"- {reason}" for reason in r["reasons"]]
    return "\n".join(lines) + "\n"
