"""`reviewflow serve`: the HTTP API (FastAPI on uvicorn) over a database.

Tokens come from REVIEWFLOW_API_TOKENS (comma-separated, `ro:TOKEN` for read-only) and/or
`--tokens-file`; the webhook secret from REVIEWFLOW_WEBHOOK_SECRET. Both variables are removed
from the environment once read, so the tasks the server starts do not inherit them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ReviewflowError
from ..store import DEFAULT_DB, open_store, postgres_url
from .common import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RUNS_DIR,
    EXIT_BAD_INPUT,
    ConcurrencyOpt,
    LogFormatOpt,
    LogLevelOpt,
    SchedulesOpt,
    _fail,
    _logging,
    app,
    err,
    require_extra,
)

TOKENS_ENV = "REVIEWFLOW_API_TOKENS"
SECRET_ENV = "REVIEWFLOW_WEBHOOK_SECRET"
REPOS_ENV = "REVIEWFLOW_WEBHOOK_REPOS"
LEVELS = ("debug", "info", "warning", "error")


def _targets(path: Path | None) -> list[Any]:
    """The --notifications file's targets; exit 2 naming the file and field if one is bad."""
    if path is None:
        return []
    from ..notify.targets import load_targets
    from ..yamlsafe import parse_yaml

    try:
        return load_targets(
            parse_yaml(path.read_text(encoding="utf-8"), file=str(path)), file=str(path)
        )
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"--notifications {path}: {exc}")
    except ReviewflowError as exc:
        _fail(str(exc))


@app.command()
def serve(
    db: Annotated[
        str, typer.Option("--db", envvar="REVIEWFLOW_DB", help="SQLite file or postgresql:// URL.")
    ] = str(DEFAULT_DB),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            help="API tokens, one per line (`ro:TOKEN` for read-only); added to "
            f"those of {TOKENS_ENV}.",
        ),
    ] = None,
    execute: Annotated[
        bool,
        typer.Option(
            "--execute/--no-execute",
            help="Execute submitted runs in this process (default), or "
            "only store them for workers.",
        ),
    ] = True,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    max_body: Annotated[
        int,
        typer.Option("--max-body-bytes", min=1, help="Largest request body accepted (413 beyond)."),
    ] = 1024 * 1024,
    work_dir: Annotated[
        Path, typer.Option("--work-dir", help="Where review runs check repositories out (per run).")
    ] = Path(".reviewflow/work"),
    webhook_template: Annotated[
        str,
        typer.Option(
            "--webhook-template", help="Review template of webhook runs: pr, security, content."
        ),
    ] = "pr",
    notifications: Annotated[
        Path | None,
        typer.Option(
            "--notifications",
            help="YAML list of notification targets added to every run this server creates.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            envvar="REVIEWFLOW_PUBLIC_URL",
            metavar="URL",
            help="This server as users reach it (https://reviews.example): links to run pages"
            " in notifications and GitHub checks.",
        ),
    ] = None,
    github_post_back: Annotated[
        bool | None,
        typer.Option(
            "--github-post-back/--no-github-post-back",
            help="Post review results to GitHub (check run, PR comment); default: when"
            " GITHUB_TOKEN or a GitHub App (REVIEWFLOW_GITHUB_APP_ID/_KEY_FILE) is set.",
            show_default=False,
        ),
    ] = None,
    schedules: SchedulesOpt = True,
    log_format: LogFormatOpt = "auto",
    log_level: LogLevelOpt = "",
) -> None:
    """Serve the HTTP API (runs, events, logs, control, approvals, webhooks, metrics)."""
    require_extra("server", "the HTTP server")
    if postgres_url(db) is not None:
        require_extra("postgres", "a PostgreSQL database")
    import uvicorn

    from ..review.template import shipped
    from ..server import create_app
    from ..server.auth import tokens_from_env, tokens_from_file

    level = (log_level or "info").lower()
    if level not in LEVELS:
        _fail(f"bad --log-level {log_level!r}: use {', '.join(LEVELS)}")
    _logging(log_format, level)
    tokens = tokens_from_env(os.environ.pop(TOKENS_ENV, None))
    if tokens_file is not None:
        try:
            tokens += tokens_from_file(tokens_file)
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"--tokens-file {tokens_file}: {exc}")
    if not tokens:
        _fail(
            f"no API tokens: set {TOKENS_ENV} (comma-separated) or pass --tokens-file",
            EXIT_BAD_INPUT,
        )
    if webhook_template not in shipped():
        _fail(f"--webhook-template {webhook_template!r}: use one of {', '.join(sorted(shipped()))}")
    targets = _targets(notifications)
    if public_url is not None:
        from ..notify.targets import check_url

        try:
            check_url(public_url)
        except ValueError as exc:
            _fail(f"--public-url: {exc}")
    secret = os.environ.pop(SECRET_ENV, None) or None
    if github_post_back:
        from ..github import GitHubError
        from ..github_app import NO_CREDENTIALS, GitHubApp, have_credentials, server_url

        if not have_credentials():
            _fail(f"--github-post-back: {NO_CREDENTIALS}")
        try:
            GitHubApp.from_env(os.environ)  # a bad key file fails now, not at the first review
            server_url()  # so does a bad GITHUB_SERVER_URL
        except GitHubError as exc:
            _fail(str(exc))
    repos = [r for r in (os.environ.get(REPOS_ENV) or "").split(",") if r.strip()]
    try:
        store = open_store(db)
    except ReviewflowError as exc:
        _fail(str(exc))
    if execute and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `call: mypkg.tasks:f` finds ./mypkg, as `run` does
    api = create_app(
        store,
        tokens=tokens,
        webhook_secret=secret,
        execute=execute,
        runs_dir=DEFAULT_RUNS_DIR,
        work_dir=work_dir,
        max_body=max_body,
        concurrency=concurrency,
        webhook_template=webhook_template,
        webhook_repos=repos,
        notifications=targets,
        github_post_back=github_post_back,
        public_url=public_url,
        schedules=schedules,
    )
    from ..logs import log
    from ..server.logconfig import json_logs, route_warnings, uvicorn_log_config
    from ..server.protocol import JsonErrorsProtocol

    shown = "postgresql database" if postgres_url(db) else db
    as_json = json_logs(log_format)  # then every stderr line is JSON, uvicorn's too
    if as_json:
        route_warnings()
        log.info(
            "server.listen",
            url=f"http://{host}:{port}",
            db=shown,
            execute=execute,
            webhooks=bool(secret),
        )
    else:
        err.print(
            f"reviewflow serve: http://{host}:{port} ({shown}; "
            f"{'executing runs' if execute else 'not executing runs'}; "
            f"webhooks {'on' if secret else 'off'})",
            markup=False,
        )

    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        timeout_graceful_shutdown=5,
        log_level=level,
        lifespan="on",
        http=JsonErrorsProtocol,  # unparsable requests get the API's JSON error too
        log_config=uvicorn_log_config(level) if as_json else uvicorn.config.LOGGING_CONFIG,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        store.close()
