"""`reviewflow review`, `approve`, `reject` and `templates`: the review commands of the CLI.

Exit codes of `review`: 0 approve or comment, 1 request_changes (or the review could not
finish), 2 bad input (not a git repository, unknown base, bad template), 3 waiting for
approval (in CI, see below), 130 interrupted.

In CI (`CI=true` and stdin not a terminal) nobody can answer an approval gate, so a review
whose checks leave the decision to a person stops there instead of hanging the job: it prints
`verdict: waiting_for_approval` with the commands to approve or reject and to finish the run
(`reviewflow resume`, which writes the final reports), and exits 3. The reports written by
then are provisional: verdict `waiting_for_approval`, the checks' findings (what the Action
posts as the PR comment and as a check run whose conclusion is `action_required`). Checks
that already request changes end the review at once with exit 1, as anywhere.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ApprovalDecided, ReviewflowError, SpecError
from ..owners import owner_alive
from ..statedir import make_dirs
from ..states import RUN_TERMINAL, TASK_TERMINAL, RunState, TaskState
from ..store import DEFAULT_DB
from .common import (
    DEFAULT_CONCURRENCY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConcurrencyOpt,
    DbOpt,
    LogFormatOpt,
    LogLevelOpt,
    _execute,
    _fail,
    _logging,
    _open,
    _shown,
    app,
    err,
    out,
)

templates_app = typer.Typer(
    help="Review templates: list the shipped ones, show one.", no_args_is_help=True
)
app.add_typer(templates_app, name="templates")

REPORTS_DIR = Path(".reviewflow/reviews")


@app.command()
def review(
    path: Annotated[Path, typer.Argument(help="The git repository (or a folder in it).")] = Path(
        "."
    ),
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Commit to compare with (default: merge-base with origin/main, else "
            "main, else HEAD~1).",
        ),
    ] = None,
    template: Annotated[
        str, typer.Option("--template", help="pr, security, content, or a template YAML file.")
    ] = "pr",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for report.md, report.json, report.sarif "
            "(default: .reviewflow/reviews/<run id>).",
        ),
    ] = None,
    db: DbOpt = DEFAULT_DB,
    all_findings: Annotated[
        bool,
        typer.Option(
            "--all-findings",
            help="Report and count findings on unchanged lines of changed files "
            "too (by default only changed lines count).",
        ),
    ] = False,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run id to use.")] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Run every check, even those whose inputs (files, tools, configuration) "
            "did not change since an earlier review (their results are reused from "
            ".reviewflow/cache otherwise).",
        ),
    ] = False,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    log_format: LogFormatOpt = "auto",
    log_level: LogLevelOpt = "",
) -> None:
    """Review the changes of a git repository; writes report.md, report.json, report.sarif."""
    # Nothing that only executing the run needs (the engine, asyncio, the checks' modules and
    # their tools, rich's markup) is imported before the run is stored: tests/cli/
    # test_cli_imports.py, docs/benchmarks.md ("Start-up: spawn → run created").
    from ..review.builder import build_review, included
    from ..review.change import collect_change, repo_root
    from ..review.checks.registry import CheckNotFound, checks
    from ..review.template import load_template
    from ..submit import new_run_id, submit_run

    _logging(log_format, log_level)
    try:
        root = repo_root(path.resolve())
        tmpl = load_template(template, project=root)
    except ReviewflowError as exc:
        _fail(str(exc))
    from ..plugins import load_plugin_folders  # hashlib: not for every command's start-up

    broken = load_plugin_folders(tmpl.plugins)
    for name, why in broken.items():
        err.print(f"warning: plugin {name} failed to load: {why}", markup=False)
    rid = run_id or new_run_id(f"review-{tmpl.name}")
    target = (out_dir or REPORTS_DIR / rid).resolve()
    try:
        _check_out(target, root)
        exclude: tuple[str, ...] = (
            (target.relative_to(root).as_posix() + "/",) if target.is_relative_to(root) else ()
        )
        db_path = db.resolve()
        if db_path.is_relative_to(root):  # the database, its -wal and -shm files
            exclude += (db_path.relative_to(root).as_posix(),)
        change = collect_change(path, base, exclude=exclude, root=root)
        chosen = included(tmpl, change)
        for name, config in tmpl.checks.items():  # all of them: a typo must not wait for a
            if config.when == "never":  # change that happens to include its check
                continue
            uses = config.uses or name
            try:
                checks.require(uses)
            except CheckNotFound as exc:
                # A typo is bad input; a check of a broken plugin fails alone (the others run).
                if not broken and uses not in checks.plugin_errors:
                    _fail(f"{tmpl.source}: checks.{name}: {exc.args[0]}")
        spec = build_review(
            tmpl,
            change,
            out=target,
            all_findings=all_findings,
            chosen=chosen,
            cache=not no_cache,
            cache_exclude=exclude,
        )
    except ReviewflowError as exc:
        _fail(str(exc))
    _prepare_out(target)
    store = _open(db)
    try:
        rid, created = submit_run(
            store,
            spec,
            run_id=rid,
            meta={
                "template": tmpl.name,
                "base": change.base,
                "head": change.head or "",
                "path": change.root,
            },
        )
    except SpecError as exc:
        _fail(f"--run-id: {exc.message}")
    if not created:
        _fail(f"run {rid} already exists: see `reviewflow status {rid}`", EXIT_FAILED)
    from rich.markup import escape

    files = len(change.files)
    out.print(
        f"review [bold]{escape(rid)}[/] ({tmpl.name}: {files} changed file(s) since "
        f"{escape(change.base_ref)}; checks: {escape(', '.join(chosen) or 'none')})",
        markup=True,
    )
    waiting: list[str] | None = [] if _in_ci() else None
    code = _execute(
        store, db, rid, as_json=False, concurrency=concurrency, spec=spec, stop_waiting=waiting
    )
    if waiting:
        raise typer.Exit(_waiting(store, db, rid, waiting[0], target))
    if code == EXIT_INTERRUPTED:
        raise typer.Exit(code)
    raise typer.Exit(_verdict(target, code))


EXIT_WAITING = 3
"""`reviewflow review` in CI: the checks passed the gates, a person has yet to approve."""


def _in_ci() -> bool:
    """A CI job: `CI=true` (GitHub Actions, GitLab, CircleCI, ... set it) and no terminal to
    ask on."""
    import sys

    flag = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # closed
        interactive = False
    return flag and not interactive


def _waiting(store: Any, db: Path, run_id: str, task: str, target: Path) -> int:
    """Say that the review waits for a person, what the checks found, and how to go on
    (`target`: the reports' folder, where the provisional report is)."""
    from ..review.builder import VERDICT_TASK

    found = ""
    for record in store.get_tasks(run_id):
        if record.name == VERDICT_TASK and record.result:
            try:
                result = json.loads(record.result)
                found = f"{result.get('verdict')}, {len(result.get('findings') or [])} finding(s)"
            except (ValueError, AttributeError):
                pass
    where = "" if db == DEFAULT_DB else f" --db {_shown(db)}"
    out.print("verdict: waiting_for_approval", markup=False)
    out.print(
        "  - CI=true and no terminal: nobody here can approve, so the review stops at the gate "
        "(the run is kept)",
        markup=False,
    )
    if found:
        out.print(f"  - the checks' own verdict: {found}", markup=False)
    out.print(f"approve: reviewflow approve {run_id} {task}{where}", markup=False)
    out.print(f"reject:  reviewflow reject {run_id} {task} --comment WHY{where}", markup=False)
    out.print(
        f"then:    reviewflow resume {run_id}{where}  (writes the reports and the verdict)",
        markup=False,
    )
    if (target / "report.md").is_file():
        out.print(
            f"report: {target / 'report.md'} (provisional: the checks' findings, no decision yet)",
            markup=False,
        )
    return EXIT_WAITING


def _check_out(target: Path, root: Path) -> None:
    """--out must be a folder we can write that holds none of the repository's files (its
    contents are left out of the change: a source folder there would hide real changes)."""
    from ..review.change import git

    if target.exists() and not target.is_dir():
        _fail(f"--out {target}: exists and is not a folder")
    if target == root or (
        target.is_relative_to(root)
        and git(root, "ls-files", "-z", "--", target.relative_to(root).as_posix()).stdout
    ):
        _fail(f"--out {target}: holds files of the repository; choose a new or empty folder")


def _prepare_out(target: Path) -> None:
    """Create --out now, before any check runs: a typo must not cost a whole review."""
    try:
        make_dirs(target)
        probe = target / ".reviewflow-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        _fail(f"--out {target}: cannot write there: {exc.strerror or exc}")


def _verdict(target: Path, code: int) -> int:
    report = target / "report.json"
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        err.print("the review did not finish: no report written", markup=False)
        return code or EXIT_FAILED
    verdict = doc.get("verdict")
    out.print(f"verdict: {verdict}", markup=False)
    for reason in doc.get("reasons", []):
        out.print(f"  - {reason}", markup=False)
    out.print(f"report: {target / 'report.md'} (also report.json, report.sarif)", markup=False)
    return EXIT_FAILED if verdict == "request_changes" else EXIT_OK


def _approver(by: str | None) -> str:
    if by:
        return by
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def _decide(
    run_id: str, task: str, decision: str, comment: str | None, by: str | None, db: Path
) -> None:
    store = _open(db, must_exist=True)
    record = store.get_run(run_id)
    if record is None:
        _fail(f"no run with id {run_id!r} in {_shown(db)}")
    tasks = {t.name: t for t in store.get_tasks(run_id)}
    spec: dict[str, Any] = json.loads(record.spec)
    body = spec.get("tasks", {}).get(task) or spec.get("on_failure", {}).get(task)
    if task not in tasks or body is None:
        names = [n for n, b in spec.get("tasks", {}).items() if b.get("type") == "approval"]
        hint = f" (approval tasks: {', '.join(names)})" if names else " (it has no approval task)"
        _fail(f"run {run_id} has no task {task!r}{hint}")
    if body.get("type") != "approval":
        _fail(f"task {task!r} is not an approval task (type {body.get('type')})")
    if RunState(record.state) in RUN_TERMINAL:
        _fail(f"run {run_id} already ended: {record.state}", EXIT_FAILED)
    state = TaskState(tasks[task].state)
    if state in TASK_TERMINAL:
        _fail(f"task {task} already ended: {state.value}", EXIT_FAILED)
    if state is TaskState.BLOCKED:
        _fail(
            f"task {task} is not waiting for approval yet (its dependencies are not done)",
            EXIT_FAILED,
        )
    who = _approver(by)
    allowed = (body.get("params") or {}).get("approvers") or []
    if allowed and who not in allowed:
        _fail(f"{who} may not decide on {task} (approvers: {', '.join(allowed)})", EXIT_FAILED)
    now = time.time()
    detail = f"{decision} by {who}" + (f": {comment}" if comment else "")
    event = (run_id, task, state.value, state.value, tasks[task].attempts, now, detail)
    try:
        store.decide_approval(run_id, task, decision, who, comment, now, event)
    except ApprovalDecided as exc:
        _fail(str(exc), EXIT_FAILED)
    out.print(f"{run_id}/{task}: {detail}", markup=False)
    if not record.mode and not owner_alive(record.owner, record.lease_until, now):
        out.print(
            f"nothing is executing the run: continue with `reviewflow resume {run_id}`",
            markup=False,
        )


ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by", envvar="REVIEWFLOW_APPROVER", help="Who decides (default: your user name)."
    ),
]


@app.command()
def approve(
    run_id: str,
    task: str,
    comment: Annotated[str | None, typer.Option("--comment", help="Why.")] = None,
    by: ByOpt = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Approve a waiting approval task (recorded durably; the run continues)."""
    _decide(run_id, task, "approved", comment, by, db)


@app.command()
def reject(
    run_id: str,
    task: str,
    comment: Annotated[str, typer.Option("--comment", help="Why (required).")],
    by: ByOpt = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Reject a waiting approval task (the task fails with your comment)."""
    if not comment.strip():
        _fail("--comment must say why")
    _decide(run_id, task, "rejected", comment, by, db)


@templates_app.command("list")
def templates_list() -> None:
    """The templates shipped with reviewflow."""
    from ..review.template import load_template, shipped

    for name in sorted(shipped()):
        tmpl = load_template(name)
        out.print(f"{name:<10} {tmpl.description}", markup=False)


@templates_app.command("show")
def templates_show(name: Annotated[str, typer.Argument(help="A template name or file.")]) -> None:
    """Print a template's YAML (a starting point for your own: `extends: pr`)."""
    from ..review.template import template_text

    try:
        out.print(template_text(name), markup=False, end="")
    except SpecError as exc:
        _fail(str(exc))
