"""`reviewflow ui`: the dashboard on the embedded SQLite database, on 127.0.0.1 only.

A fresh random token is made for this process and never stored: it is printed inside the URL's
fragment (`#token=...`), which browsers do not send to the server, and the page exchanges it
once for a session cookie. Nothing else (no API token) can log in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ReviewflowError
from ..store import DEFAULT_DB, postgres_url
from .common import DEFAULT_RUNS_DIR, _fail, app, out, require_extra

HOST = "127.0.0.1"


@app.command()
def ui(
    db: Annotated[
        Path, typer.Option("--db", envvar="REVIEWFLOW_DB", help="The SQLite database file.")
    ] = DEFAULT_DB,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free).")
    ] = 8765,
    execute: Annotated[
        bool,
        typer.Option(
            "--execute/--no-execute",
            help="Carry on runs nobody executes, as serve does (default: only show them).",
        ),
    ] = False,
) -> None:
    """Open the web dashboard on the embedded database: prints the URL to open (one-time login)."""
    require_extra("server", "the dashboard")
    if postgres_url(str(db)) is not None:
        _fail("reviewflow ui is for the embedded SQLite database: use `reviewflow serve --db URL`")
    if not db.exists():
        _fail(f"--db {db}: no such database (run a workflow first, or pass --db PATH)")
    import socket

    import uvicorn

    from ..server import create_app
    from ..store import open_store

    try:
        store = open_store(db)
    except ReviewflowError as exc:
        _fail(str(exc))
    if execute and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import secrets  # (hashlib, base64: for this command only)

    token = secrets.token_urlsafe(32)
    api = create_app(
        store,
        tokens=[],
        execute=execute,
        runs_dir=DEFAULT_RUNS_DIR,
        resume_orphans=execute,
        ui_login_once=[token],
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        _fail(f"--port {port}: {exc.strerror}")
    # Listening before the URL is printed: a browser opened at once waits in the backlog
    # while the server starts, instead of being refused.
    sock.listen(128)
    bound = sock.getsockname()[1]
    out.print(f"reviewflow dashboard ({db}): open this URL (it logs in once)", markup=False)
    out.print(f"http://{HOST}:{bound}/#token={token}", markup=False, soft_wrap=True)
    sys.stdout.flush()
    config = uvicorn.Config(
        api, log_level="warning", lifespan="on", timeout_graceful_shutdown=5, access_log=False
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        store.close()
