"""A real PostgreSQL server for the tests: started once per session, one database per test.

The server is the one named by REVIEWFLOW_TEST_PG_URL (a URL to a maintenance database of a
server where the user may CREATE DATABASE) or, without it, a throwaway one started here from
the server binaries (initdb/pg_ctl/postgres on PATH or in /usr/lib/postgresql/*/bin): in a
private temp folder, listening on 127.0.0.1 on a free port, trust authentication, fsync off (the
data dies with the session anyway). initdb and postgres refuse to run as root, so as root they
run as the `postgres` system user (created when missing). While it runs, REVIEWFLOW_TEST_PG_URL
names it, so subprocesses (CLI tests) can reach it too.

Each test gets `CREATE DATABASE … TEMPLATE <template>` of a database migrated once per session
(a file copy: much faster than migrating every database), dropped at the end of the test.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from reviewflow.store import migrate

ENV_URL = "REVIEWFLOW_TEST_PG_URL"
ENV_REQUIRE = "REVIEWFLOW_REQUIRE_POSTGRES"
SERVER_USER = "postgres"
BINARIES = ("initdb", "pg_ctl", "postgres")
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    # CREATE DATABASE (once per test) WAL-logs a copy of the template: keep that cheap
    "wal_init_zero": "off",
    "wal_buffers": "'16MB'",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'1h'",
    "log_min_messages": "warning",
}


class Unavailable(Exception):
    """No server to test on: a skip, or a failure under REVIEWFLOW_REQUIRE_POSTGRES=1."""


def required() -> bool:
    return os.environ.get(ENV_REQUIRE, "") not in ("", "0")


def find_bindir() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: PATH first, then Debian's newest version."""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda p: _version_key(p.parent.name), reverse=True)
    for folder in candidates:
        if all((folder / name).is_file() for name in BINARIES):
            return folder
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))


class PgServer:
    """A server the tests may create databases on; `stop` undoes what the session did."""

    def __init__(self, url: str, bindir: Path | None = None, local: LocalServer | None = None):
        self.url = url
        self.bindir = bindir
        self._local = local
        self._names = itertools.count(1)
        self._prefix = f"rf_test_{os.getpid()}"
        self.template = f"{self._prefix}_template"
        self._admin = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._stopped = False
        self.create_database(self.template, template="template0")
        migrate.upgrade(with_database(url, self.template))

    def tool(self, name: str) -> str | None:
        """A client program (pg_dump…) of the server's version if known, else from PATH."""
        if self.bindir is not None and (self.bindir / name).is_file():
            return str(self.bindir / name)
        return shutil.which(name)

    def create_database(self, name: str, template: str | None = None) -> str:
        self._admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template or self.template)
        ))
        return with_database(self.url, name)

    def new_database(self, *, migrated: bool = True) -> str:
        """URL of a new database: a copy of the migrated template, or empty (template0)."""
        name = f"{self._prefix}_{next(self._names)}"
        return self.create_database(name, None if migrated else "template0")

    def drop_database(self, url: str) -> None:
        """Drop the database of `url`, even if a test left connections to it open."""
        name = urlsplit(url).path.lstrip("/")
        force = " WITH (FORCE)" if self._admin.info.server_version >= 130000 else ""
        self._admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + sql.SQL(force)
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._local is None:  # someone else's server: leave it as found
                self.drop_database(with_database(self.url, self.template))
        finally:
            self._admin.close()
            if self._local is not None:
                os.environ.pop(ENV_URL, None)
                self._local.stop()


class LocalServer:
    """A postgres process of this session in a temp folder (removed by `stop`)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = _server_user()
        self.base = Path(tempfile.mkdtemp(prefix="reviewflow-pg-"))
        self.data = self.base / "data"
        self.port = 0
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SERVER_USER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        settings = {**SETTINGS, "unix_socket_directories": f"'{self.base}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        for _ in range(3):  # the free port may be taken between the probe and the start
            self.port = _free_port()
            started = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                                "-l", str(self.base / "server.log"), "-o", f"-p {self.port}",
                                check=False)
            if started.returncode == 0:
                break
        else:
            log = (self.base / "server.log").read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"postgres did not start:\n{started.stdout}{log}")
        atexit.register(self.stop)  # in case the session ends without its teardown

    @property
    def url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        options: dict[str, Any] = {}
        if self.user is not None:
            options = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bindir / program), *args], cwd=self.base, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
            check=False, **options,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}")
        return done

    def stop(self) -> None:
        if self.base.exists():
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w",
                          check=False)
            shutil.rmtree(self.base, ignore_errors=True)


def _server_user() -> pwd.struct_passwd | None:
    """None when not root; as root the `postgres` system user, created if missing."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", SERVER_USER], check=True)
        return pwd.getpwnam(SERVER_USER)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_session_server() -> PgServer:
    """The server of this test session (raises Unavailable when there is none to be had)."""
    external = os.environ.get(ENV_URL)
    if external:
        return PgServer(external, bindir=find_bindir())
    bindir = find_bindir()
    if bindir is None:
        raise Unavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres on PATH or in"
            f" /usr/lib/postgresql/*/bin) and no {ENV_URL}"
        )
    local = LocalServer(bindir)
    try:
        server = PgServer(local.url, bindir=bindir, local=local)
    except BaseException:
        local.stop()
        raise
    os.environ[ENV_URL] = local.url
    return server
