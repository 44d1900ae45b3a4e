"""The review's task functions: `change_result`, `run_check` (one check) and `summarize`.

They are plain `python` tasks of the workflow the builder makes, so a review gets everything
the engine gives any run: parallel checks, timeouts, durable results, resume after a crash.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import stat
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import TaskFailed
from ..executors.base import TaskContext
from ..executors.python import in_daemon_thread
from ..plugins import load_plugin_folders
from ..statedir import make_dirs
from .builder import APPROVAL_TASK, CHANGE_TASK, SUMMARY_TASK, VERDICT_TASK
from .cache import (
    POLICIES,
    CacheConfig,
    CheckKey,
    FileCache,
    ReviewCache,
    cache_folder,
    check_key,
    tools_fingerprint,
    tree_state,
)
from .change import Change, ChangeError
from .checks.base import CheckContext, ServiceUnreachable, ToolMissing, tool_bound
from .checks.registry import CheckNotFound, checks
from .findings import CheckResult, Finding, mask_data, mask_text
from .masking import Masker
from .report import (
    WAITING,
    Verdict,
    decide,
    mermaid_view,
    report_json,
    report_markdown,
    report_sarif,
    write_reports,
)
from .template import Gates

CHECK_STATES = {"passed": "succeeded", "failed": "failed", "skipped": "skipped", "error": "failed"}


async def change_result(ctx: TaskContext) -> dict[str, Any]:
    """The change, as collected when the review was submitted (the DAG was built from it)."""
    return dict(ctx.params["change"])


def _normalise(name: str, out: Any) -> CheckResult:
    if isinstance(out, CheckResult):
        return out if out.check == name else out.model_copy(update={"check": name})
    if isinstance(out, dict):
        return CheckResult.model_validate({**out, "check": name})
    if isinstance(out, list | tuple):
        findings = [
            f if isinstance(f, Finding) else Finding.model_validate({**f, "check": name})
            for f in out
        ]
        return CheckResult.from_findings(name, findings)
    if out is None:
        return CheckResult(check=name, summary="no findings")
    raise TypeError(f"check returned {type(out).__name__}; expected CheckResult or findings")


def _tools_tmp(run_id: str, task: str) -> Path:
    """The tools' TMPDIR for one check of one run, emptied of a lost attempt's leftovers.

    Its name is known in advance (so a resume after a SIGKILL finds what to remove), so it
    lives in a folder only this user can write to: a run id can be public (a webhook's), and
    another local user must not be able to plant that folder or a link in its place. Others
    may still pass through it (0711): a tool that drops privileges (a test suite starting
    PostgreSQL as `postgres`) must reach its own temporary folder.
    """
    parent = Path(tempfile.gettempdir()) / f"reviewflow-{os.getuid()}"
    try:
        parent.mkdir(mode=0o711, exist_ok=True)
        info = parent.lstat()
        private = (
            stat.S_ISDIR(info.st_mode)
            and info.st_uid == os.getuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        )
        if private and stat.S_IMODE(info.st_mode) != 0o711:
            parent.chmod(0o711)  # mkdir's mode is cut by the umask
    except OSError:
        private = False
    if not private:  # not ours: a fresh folder nobody could have prepared
        return Path(tempfile.mkdtemp(prefix=f"reviewflow-{task}-"))
    folder = parent / f"{run_id}-{task}"
    shutil.rmtree(folder, ignore_errors=True)
    return folder


async def run_check(ctx: TaskContext) -> dict[str, Any]:
    """Run one check on the change; a missing tool or service is a skip, not a failure."""
    load_plugin_folders(ctx.params.get("plugins") or [])
    change = Change.model_validate(ctx.results[CHANGE_TASK])
    upstream = {
        name: CheckResult.model_validate(r)
        for name, r in ctx.results.items()
        if name != CHANGE_TASK and isinstance(r, dict) and "status" in r
    }
    try:
        fn = checks.get(ctx.params["check"])
    except CheckNotFound as exc:
        raise TaskFailed(str(exc.args[0]), retryable=False) from None
    except Exception as exc:  # an entry point or module that fails to import
        raise TaskFailed(
            f"check {ctx.params['check']!r} failed to load: {exc}", retryable=False
        ) from None
    # One folder per run and check, so a resume after a SIGKILL removes what the lost attempt
    # left there (a killed test suite leaves its temporary databases behind).
    tmp_dir = _tools_tmp(ctx.run_id, ctx.task)
    # Secrets are masked before anything is stored: the log as tools write it, the result and
    # any error text before the engine records them.
    masker = await asyncio.to_thread(Masker.for_change, change)
    plan = await asyncio.to_thread(_CachePlan.make, ctx, change, upstream)
    cctx = CheckContext(
        check=ctx.task,
        root=Path(change.root),
        change=change,
        options=ctx.params.get("options") or {},
        upstream=upstream,
        log_path=ctx.log_path,
        on_process=ctx.on_process,
        timeout=tool_bound(ctx.spec.timeout),
        tmp_dir=tmp_dir,
        mask=masker.text,
        cache=isinstance(ctx.params.get("cache"), dict),
    )
    result: CheckResult | None = None
    reused = False
    try:
        if plan is not None:
            result = await asyncio.to_thread(plan.reuse, ctx.log_path)
            reused = result is not None
            cctx.file_cache = plan.files
        if result is None:
            if inspect.iscoroutinefunction(fn):
                out = await fn(cctx)
            else:
                out = await in_daemon_thread(fn, cctx)
                if inspect.isawaitable(out):
                    out = await out
            result = _normalise(ctx.task, out)
            if plan is not None and plan.files is not None:
                result.cached = plan.files.note()
    except ToolMissing as exc:
        result = CheckResult.skipped(ctx.task, str(exc))
        result.metrics["incomplete"] = True
    except ServiceUnreachable:
        result = CheckResult.skipped(ctx.task, "service unreachable")
        result.metrics["incomplete"] = True
    except Exception as exc:
        text = str(exc)
        if masker.text(text) == text:
            raise
        retryable = exc.retryable if isinstance(exc, TaskFailed) else True
        raise TaskFailed(masker.text(text), retryable=retryable) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        masker.add(result.secrets if result is not None else ())
        masker.file(ctx.log_path)
    data: dict[str, Any] = masker.data(result.model_dump(mode="json"))
    if plan is not None and not reused and _reusable(result):
        await asyncio.to_thread(plan.remember, data)
    return data


def _reusable(result: CheckResult) -> bool:
    """A result worth keeping: not one of a check that could not run (a missing tool, an
    unreachable service: the next review may have them)."""
    if result.status == "error" or result.metrics.get("incomplete"):
        return False
    return result.status != "skipped" or not any(
        m in result.summary for m in ("not installed", "unreachable")
    )


class _CachePlan:
    """The cache of one check task: its key, the stored result if any, its per-file cache."""

    def __init__(self, ctx: TaskContext, store: ReviewCache, key: CheckKey) -> None:
        self.ctx = ctx
        self.store = store
        self.key = key
        self.files = FileCache(store, key) if key.policy.per_file else None

    @classmethod
    def make(
        cls, ctx: TaskContext, change: Change, upstream: dict[str, CheckResult]
    ) -> _CachePlan | None:
        """None when the review does not use the cache (`--no-cache`) or the check is never
        reused (a plugin, the dependency audit); the key when git can say what the tree is."""
        params = ctx.params.get("cache")
        if not isinstance(params, dict):
            return None
        config = CacheConfig.model_validate(params.get("config") or {})
        if not config.enabled or ctx.params["check"] not in POLICIES:
            return None
        try:
            state = tree_state(Path(change.root), params.get("exclude") or ())
        except (ChangeError, OSError, ValueError):
            return None  # what the tree holds is not known: run the check
        key = check_key(
            task=ctx.task,
            uses=ctx.params["check"],
            options=ctx.params.get("options") or {},
            change=change,
            upstream=upstream,
            state=state,
            tools=tools_fingerprint(),
        )
        if key is None:
            return None
        return cls(ctx, ReviewCache(cache_folder(change.root), config), key)

    def reuse(self, log_path: Path | None) -> CheckResult | None:
        """The stored result of the same inputs, marked as reused (and said so in the log)."""
        entry = self.store.get(self.key.key)
        if entry is None:
            return None
        try:
            result = CheckResult.model_validate(entry["result"])
        except (KeyError, ValueError):
            return None
        result.cached = {"run": entry.get("run"), "stored_at": entry.get("stored_at")}
        if log_path is not None:
            try:
                make_dirs(log_path.parent)
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(
                        f"inputs unchanged since run {entry.get('run')}: its result is reused "
                        f"(key {self.key.key[:16]}; `reviewflow review --no-cache` re-runs)\n"
                    )
            except OSError:
                pass
        return result

    def remember(self, data: dict[str, Any]) -> None:
        stored = {k: v for k, v in data.items() if k != "cached"}
        self.store.put(self.key.key, {"result": stored, "run": self.ctx.run_id})


def _mask_logs(run_dir: Path, secrets: list[str]) -> None:
    """Attempt logs hold raw tool output: mask what the secret scan found there too."""
    if not secrets or not run_dir.is_dir():
        return
    for log in run_dir.glob("*.log"):
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        masked = mask_text(text, secrets)
        if masked != text:
            log.write_text(masked, encoding="utf-8")


def _check_results(
    ctx: TaskContext, view: dict[str, dict[str, Any]]
) -> tuple[dict[str, CheckResult], dict[str, Any] | None]:
    """The checks' results this task sees (a check that did not finish is an error or an
    incomplete skip), and the approval's decision if it is one of them."""
    results: dict[str, CheckResult] = {}
    approval: dict[str, Any] | None = None
    for name in ctx.spec.needs:
        if name in (CHANGE_TASK, VERDICT_TASK):
            continue
        value = ctx.results.get(name)
        if name == APPROVAL_TASK:
            approval = _approval(ctx, value, view)
            continue
        if isinstance(value, dict) and "status" in value:
            results[name] = CheckResult.model_validate(value)
            continue
        why = ctx.failures.get(name, "did not run")
        state = view.get(name, {}).get("state")
        if state == "skipped":
            result = CheckResult.skipped(name, f"not run ({why})")
            result.metrics["incomplete"] = True
            results[name] = result
        else:
            results[name] = CheckResult(check=name, status="error", summary=str(why))
    return results, approval


async def early_verdict(ctx: TaskContext) -> dict[str, Any]:
    """The verdict of the checks alone: fails when they already request changes (so the
    approval after it is skipped), else passes their findings on to the person who decides —
    and writes them as provisional reports (verdict `waiting_for_approval`), so that a review
    stopped at the gate (in CI) still has a report, a comment and a check run to show."""
    view = ctx.run_view() if ctx.run_view is not None else {}
    change = Change.model_validate(ctx.results[CHANGE_TASK])
    results, _ = _check_results(ctx, view)
    gates = Gates.model_validate(ctx.params.get("gates") or {})
    verdict = decide(results, change, gates, all_findings=bool(ctx.params.get("all_findings")))
    if verdict.decision == "request_changes":
        secrets = sorted((await asyncio.to_thread(Masker.for_change, change)).values)
        raise TaskFailed(
            "request_changes, no approval asked: " + mask_text("; ".join(verdict.reasons), secrets),
            retryable=False,
        )
    if "out" in ctx.params:  # runs stored before provisional reports existed have no `out`
        waiting = replace(
            verdict,
            decision=WAITING,
            reasons=[
                f"waiting for approval: the checks say {verdict.decision}; "
                "a person approves or rejects at the gate",
                *verdict.reasons,
            ],
        )
        await _reports(ctx, view, change, results, gates, waiting, approval=None)
    return {
        "verdict": verdict.decision,
        "findings": [f.model_dump(mode="json") for f in verdict.shown],
    }


async def _reports(
    ctx: TaskContext,
    view: dict[str, dict[str, Any]],
    change: Change,
    results: dict[str, CheckResult],
    gates: Gates,
    verdict: Verdict,
    approval: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Write report.md, report.json and report.sarif, masked: (report.json, paths, secrets)."""
    doc = report_json(
        verdict,
        results,
        change,
        run_id=ctx.run_id,
        template=str(ctx.params.get("template", "")),
        view=view,
        approval=approval,
        gates=gates,
    )
    secrets = sorted((await asyncio.to_thread(Masker.for_change, change)).values)
    own = {"request_changes": "failed", WAITING: "running"}.get(verdict.decision, "succeeded")
    # The diagram shows what each check found, like the table (a check task that ran fine
    # but found errors is "failed" to a reader).
    shown = {name: CHECK_STATES[r.status] for name, r in results.items()}
    writer = SUMMARY_TASK if verdict.decision != WAITING else VERDICT_TASK
    diagram = mermaid_view(view, {**shown, writer: own})
    markdown = report_markdown(doc, results, verdict, diagram)
    doc, markdown = mask_data(doc, secrets), mask_text(markdown, secrets)
    paths = write_reports(
        Path(ctx.params["out"]),
        doc,
        markdown,
        mask_data(
            report_sarif(verdict, root=change.root, results=results, secrets=secrets), secrets
        ),
    )
    return doc, paths, secrets


async def summarize(ctx: TaskContext) -> dict[str, Any]:
    """Verdict from the gates, then report.md, report.json and report.sarif.

    A `request_changes` verdict fails this task (after writing the reports), so the run — and
    `reviewflow review` or `resume` — ends with exit code 1.
    """
    view = ctx.run_view() if ctx.run_view is not None else {}
    change = Change.model_validate(ctx.results[CHANGE_TASK])
    results, approval = _check_results(ctx, view)
    gates = Gates.model_validate(ctx.params.get("gates") or {})
    verdict = decide(
        results, change, gates, all_findings=bool(ctx.params.get("all_findings")), approval=approval
    )
    doc, paths, secrets = await _reports(ctx, view, change, results, gates, verdict, approval)
    _mask_logs(ctx.run_dir, secrets)
    cache = ctx.params.get("cache")
    if isinstance(cache, dict):  # once per review: the least recently used entries go
        config = CacheConfig.model_validate(cache.get("config") or {})
        await asyncio.to_thread(ReviewCache(cache_folder(change.root), config).evict)
    if verdict.decision == "request_changes":
        raise TaskFailed(
            "request_changes: " + mask_text("; ".join(verdict.reasons), secrets), retryable=False
        )
    return {
        "verdict": verdict.decision,
        "reasons": mask_data(verdict.reasons, secrets),
        "counts": doc["counts"],
        "reports": paths,
    }


def _approval(
    ctx: TaskContext, value: Any, view: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    if isinstance(value, dict) and value.get("decision"):
        return value
    if view.get(APPROVAL_TASK, {}).get("state") == "skipped":
        return None  # not asked: the checks had decided already
    store = ctx.store
    record = store.get_approval(ctx.run_id, APPROVAL_TASK) if store is not None else None
    if record is not None and record.decision:
        return {"decision": record.decision, "approver": record.approver, "comment": record.comment}
    why = ctx.failures.get(APPROVAL_TASK)
    return {"decision": "rejected", "approver": None, "comment": why} if why else None
