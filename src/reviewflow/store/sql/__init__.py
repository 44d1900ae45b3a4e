"""The PostgreSQL store's SQL, kept as SQL files rather than Python strings.

`queries.sql` holds every statement the store runs, each under a `-- name: <name>` line, so the
whole data access of the backend can be read (and EXPLAINed) in one place. `migrations/` holds
the numbered schema changes (`NNNN_what.sql`, applied in order by reviewflow.store.migrate) and
`schema.sql` the same schema in one go, used for an empty database; a test keeps the two equal.
Files are read once per process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_(\w+)\.sql$")
_VERSION = re.compile(r"^-- version: (\d+)\s*$", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^\s*--.*\n?", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # file name without .sql, e.g. "0001_initial"
    sql: str


def _read(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def queries() -> dict[str, str]:
    """Statement name -> SQL text, without its comment lines (psycopg would take a `%` in a
    comment for a placeholder) and without the trailing semicolon."""
    parts = _NAME.split(_read("queries.sql"))
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise ValueError(f"queries.sql: statement {name!r} is defined twice")
        found[name] = _COMMENT_LINE.sub("", body).strip().rstrip(";")
    return found


def query(name: str) -> str:
    return queries()[name]


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration, by version; versions must be 1, 2, 3... without gaps."""
    found = []
    for entry in files(__name__).joinpath("migrations").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name[:-4], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations are not numbered 1..n: {[m.name for m in found]}")
    return tuple(found)


@cache
def schema() -> tuple[int, str]:
    """(version, SQL) of schema.sql: the whole schema at that migration version."""
    text = _read("schema.sql")
    match = _VERSION.search(text)
    if match is None:
        raise ValueError("schema.sql has no `-- version: N` line")
    return int(match[1]), text
