"""`reviewflow db upgrade`: the database's schema migrations."""

from __future__ import annotations

import typer

from ..errors import ReviewflowError
from ..store import DEFAULT_DB, open_store, postgres_url
from .common import EXIT_FAILED, DbOpt, JsonOpt, _fail, _print_json, _shown, app, out, require_extra

db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """Apply missing schema migrations (idempotent; also done on first use of an empty one)."""
    url = postgres_url(db)
    try:
        if url is None:
            open_store(db).close()  # SQLite applies its schema when it opens
            if as_json:
                _print_json({"db": str(db), "applied": []})
            else:
                out.print(f"{db}: schema current", markup=False)
            return
        require_extra("postgres", "a PostgreSQL database")
        from ..store.migrate import upgrade

        applied = upgrade(url)
    except ReviewflowError as exc:
        _fail(str(exc), EXIT_FAILED)
    shown = _shown(url)
    if as_json:
        _print_json({"db": shown, "applied": applied})
    elif applied:
        out.print(f"{shown}: applied {', '.join(applied)}", markup=False)
    else:
        out.print(f"{shown}: schema current (nothing to apply)", markup=False)
