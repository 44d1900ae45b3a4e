"""`reviewflow db upgrade` and `--db postgresql://...` on the commands, against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reviewflow.store import open_store

WORKFLOW = "name: pg\ntasks:\n  a: {run: [echo, hi]}\n  b: {run: [echo, there], needs: [a]}\n"


def rf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reviewflow", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_db_upgrade_migrates_an_empty_database_once(pg_empty_url: str, tmp_path: Path) -> None:
    first = rf("db", "upgrade", "--db", pg_empty_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    again = rf("db", "upgrade", "--db", pg_empty_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "schema current (nothing to apply)" in again.stdout


def test_a_workflow_runs_on_postgresql_by_url(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    done = rf("run", "wf.yaml", "--db", pg_url, "--run-id", "pg-1", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    status = rf("status", "pg-1", "--db", pg_url, "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert '"state": "succeeded"' in status.stdout
    store = open_store(pg_url)
    try:
        assert {t.name: t.state for t in store.get_tasks("pg-1")} == {
            "a": "succeeded",
            "b": "succeeded",
        }
    finally:
        store.close()


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://rf:s3cret-pw@127.0.0.1:1/nowhere"  # pragma: allowlist secret
    done = rf("db", "upgrade", "--db", url, cwd=tmp_path)
    assert done.returncode != 0
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error:") and done.stderr.count("\n") == 1, done.stderr
