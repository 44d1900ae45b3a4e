"""A real PostgreSQL server for the tests: started once per session, one database per test.

The server is the one named by REVIEWFLOW_TEST_PG_URL (a URL to a maintenance database of a
server where the user may CREATE DATABASE) or, without it, a throwaway one started here from
the server binaries (initdb and postgres on PATH or in /usr/lib/postgresql/*/bin): in a
private temp folder, listening on 127.0.0.1 on a free port, trust authentication, fsync off (the
data dies with the session anyway). initdb and postgres refuse to run as root, so as root they
run as the `postgres` system user (created when missing). While it runs, REVIEWFLOW_TEST_PG_URL
names it, so subprocesses (CLI tests) can reach it too.

Each test gets `CREATE DATABASE … TEMPLATE <template>` of a database migrated once per session
(a copy: faster than migrating every database), dropped at the end of the test.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from reviewflow.store import migrate

ENV_URL = "REVIEWFLOW_TEST_PG_URL"
ENV_REQUIRE = "REVIEWFLOW_REQUIRE_POSTGRES"
SERVER_USER = "postgres"
BINARIES = ("initdb", "postgres")
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    # CREATE DATABASE (once per test) WAL-logs a copy of the template (~8 MB): no zero-filled
    # WAL segments, and checkpoints (cheap without fsync) keep the WAL on disk small
    "wal_init_zero": "off",
    "wal_buffers": "'16MB'",
    "max_wal_size": "'256MB'",
    "log_min_messages": "warning",
}


class Unavailable(Exception):
    """No server to test on: a skip, or a failure under REVIEWFLOW_REQUIRE_POSTGRES=1."""


def required() -> bool:
    return os.environ.get(ENV_REQUIRE, "") not in ("", "0")


def find_bindir() -> Path | None:
    """The folder of initdb and postgres: PATH first, then Debian's newest version."""
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
    """A server the tests may create databases on; `stop` undoes what the session did.

    Copying the template takes 30-300 ms, most of a short test's time: a helper thread keeps
    SPARE copies ready and drops finished databases, while the tests (which mostly wait on
    timers) run.
    """

    SPARE = 2

    def __init__(self, url: str, bindir: Path | None = None, local: LocalServer | None = None):
        self.url = url
        self.bindir = bindir
        self._local = local
        self._names = itertools.count(1)
        self._prefix = f"rf_test_{os.getpid()}"
        self.template = f"{self._prefix}_template"
        self._admin = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._force = " WITH (FORCE)" if self._admin.info.server_version >= 130000 else ""
        self._stopped = False
        self.create_database(self.template, template="template0")
        migrate.upgrade(with_database(url, self.template))
        self._jobs: queue.Queue[Callable[[psycopg.Connection], None] | None] = queue.Queue()
        self._spares: queue.Queue[str | BaseException] = queue.Queue()
        self._failures: list[BaseException] = []
        self._helper = threading.Thread(target=self._work, name="pg-databases", daemon=True)
        self._helper.start()
        for _ in range(self.SPARE):
            self._jobs.put(self._make_spare)

    def tool(self, name: str) -> str | None:
        """A client program (pg_dump…) of the server's version if known, else from PATH."""
        if self.bindir is not None and (self.bindir / name).is_file():
            return str(self.bindir / name)
        return shutil.which(name)

    def create_database(self, name: str, template: str | None = None) -> str:
        _create(self._admin, name, template or self.template)
        return with_database(self.url, name)

    def new_database(self, *, migrated: bool = True) -> str:
        """URL of a new database: a copy of the migrated template, or empty (template0)."""
        if not migrated:
            return self.create_database(self._next_name(), "template0")
        self._jobs.put(self._make_spare)  # to replace the one taken now
        spare = self._spares.get(timeout=120)
        if isinstance(spare, BaseException):
            raise spare
        return spare

    def drop_database(self, url: str) -> None:
        """Drop the database of `url` (soon, on the helper thread), even if a test left
        connections to it open."""
        name = urlsplit(url).path.lstrip("/")
        self._jobs.put(lambda conn: self._drop(conn, name))

    def _next_name(self) -> str:
        return f"{self._prefix}_{next(self._names)}"

    def _make_spare(self, conn: psycopg.Connection) -> None:
        name = self._next_name()
        try:
            _create(conn, name, self.template)
        except BaseException as exc:  # handed to the test that takes this spare
            self._spares.put(exc)
        else:
            self._spares.put(with_database(self.url, name))

    def _drop(self, conn: psycopg.Connection, name: str) -> None:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
            + sql.SQL(self._force)
        )

    def _work(self) -> None:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            while (job := self._jobs.get()) is not None:
                try:
                    job(conn)
                except BaseException as exc:  # reported by stop()
                    self._failures.append(exc)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._jobs.put(None)
            self._helper.join(120)
            if self._local is None:  # someone else's server: leave it as found
                while not self._spares.empty():
                    spare = self._spares.get()
                    if isinstance(spare, str):
                        self._drop(self._admin, urlsplit(spare).path.lstrip("/"))
                self._drop(self._admin, self.template)
        finally:
            self._admin.close()
            if self._local is not None:
                os.environ.pop(ENV_URL, None)
                self._local.stop()
        if self._failures:
            raise RuntimeError(f"dropping test databases failed: {self._failures}")


def _create(conn: psycopg.Connection, name: str, template: str) -> None:
    conn.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    )


class LocalServer:
    """A postgres process of this session in a temp folder (removed by `stop`).

    postgres runs as a child of the test process (not daemonised by pg_ctl) in its own session,
    so Ctrl-C in the terminal does not stop it under the running tests, and on Linux it gets
    SIGQUIT (immediate shutdown) when the test process dies, however it dies: a killed test run
    leaves no server behind (only its temp folder).
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = _server_user()
        self.base = Path(tempfile.mkdtemp(prefix="reviewflow-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        try:
            self._initdb()
            for _ in range(3):  # the free port may be taken between the probe and the start
                if self._start(_free_port()):
                    break
            else:
                raise RuntimeError(
                    f"postgres did not start:\n{self.log.read_text(errors='replace')[-3000:]}"
                )
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)  # in case the session ends without its teardown

    @property
    def url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def _as_server_user(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        done = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SERVER_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
            **self._as_server_user(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}")
        settings = {**SETTINGS, "unix_socket_directories": f"'{self.base}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _start(self, port: int) -> bool:
        """Start on `port` and wait until it accepts connections; False if it exited."""
        self.port = port
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(port)],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
                **self._as_server_user(),
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within 60 s (log: {self.log})")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGQUIT)  # immediate shutdown: the data is thrown away
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(30)
        shutil.rmtree(self.base, ignore_errors=True)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGQUIT the child when this process dies (None elsewhere).
    It runs after the switch to the server user, which would otherwise clear the setting."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGQUIT)

    return preexec


def _server_user() -> pwd.struct_passwd | None:
    """None when not root; as root the `postgres` system user, created if missing."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
        )
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
            "no PostgreSQL server binaries (initdb and postgres on PATH or in"
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
