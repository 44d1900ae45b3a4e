"""A full disk under the SQLite database, as a user meets it: `reviewflow run` stops with one
line naming the database and the error (exit 1) and prints no transition it could not save;
once there is room again `reviewflow resume` finishes the run, no task lost or completed twice.

The disk is a 1 MiB tmpfs (mounting needs root: CI runs as root). A task fills it once the
tasks before it succeeded (triggered by progress, not by time); the tasks after it cannot be
recorded. A fresh database's WAL only grows (it is reset after a checkpoint, at 1000 pages),
so the first commit after the filler needs space it cannot get.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import Procs, query, sh, write_workflow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_interrupts_the_run_and_resume_finishes_it(
    small_disk: Path, procs: Procs, tmp_path: Path
) -> None:
    db = small_disk / "rf.db"
    filler = small_disk / "filler"
    filled = tmp_path / "filled"  # outside the small disk: the filler runs its dd once
    # The filler first waits (bounded) until the 20 tasks before it are stored as succeeded:
    # the fault must come after progress is durable, whatever the machine's speed (on an idle
    # machine all of them can end inside one group-commit interval, before any flush).
    stored_first = (
        "import sqlite3, sys, time\n"
        "for _ in range(600):\n"
        f"    c = sqlite3.connect({str(db)!r})\n"
        "    n = c.execute(\"SELECT count(*) FROM tasks WHERE run_id = 'r1'"
        " AND state = 'succeeded'\").fetchone()[0]\n"
        "    c.close()\n"
        "    if n >= 20: sys.exit(0)\n"
        "    time.sleep(0.05)\n"
        "sys.exit(1)\n"
    )
    waiter = tmp_path / "wait_stored.py"
    waiter.write_text(stored_first)
    fill = (
        f"test -e {filled} || {{ touch {filled}; {sys.executable} {waiter};"
        f" dd if=/dev/zero of={filler} bs=4k 2>/dev/null; true; }}"
    )
    first = [f"a{i}" for i in range(20)]
    after = [f"b{i}" for i in range(40)]
    tasks = {name: {"run": ["true"]} for name in first}
    tasks["fill"] = sh(fill, needs=first)
    tasks.update({name: {"run": ["true"], "needs": ["fill"]} for name in after})
    write_workflow(tmp_path / "wf.yaml", tasks, name="full")

    ran = procs.run("run", "wf.yaml", "--db", str(db), "--run-id", "r1")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, ran.stderr
    assert str(db) in errors[0] and "database or disk is full" in errors[0]
    assert "reviewflow resume r1" in errors[0]
    assert filled.exists()
    # What was printed was stored: no success shown that the database does not hold.
    stored = {
        name
        for (name,) in query(
            db, "SELECT name FROM tasks WHERE run_id = 'r1' AND state = 'succeeded'"
        )
    }
    shown = set(re.findall(r"^\S+ (\S+): succeeded", ran.stdout, re.MULTILINE))
    assert shown <= stored
    assert "-> succeeded" not in ran.stdout
    assert query(db, "SELECT state FROM runs WHERE run_id = 'r1'") == [("running",)]
    assert len(stored) < len(tasks)  # the fault came before the end

    filler.unlink()  # room again
    resumed = procs.run("resume", "r1", "--db", str(db))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert query(db, "SELECT state FROM runs WHERE run_id = 'r1'") == [("succeeded",)]
    states = dict(query(db, "SELECT name, state FROM tasks WHERE run_id = 'r1'"))
    assert states == dict.fromkeys(tasks, "succeeded")
    successes = Counter(
        name
        for (name,) in query(
            db,
            "SELECT task FROM events WHERE run_id = 'r1' AND task IS NOT NULL"
            " AND to_state = 'succeeded'",
        )
    )
    assert successes == dict.fromkeys(tasks, 1)
