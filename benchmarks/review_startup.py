"""Start-up of `reviewflow review`: from spawn to the run stored, with what it cost on the way.

    python benchmarks/review_startup.py                       # this checkout's src/, 7 rounds
    python benchmarks/review_startup.py --tree OLD/src --tree src   # two trees, alternated

The change is benchmarks/review.py's: a clone of `--repo` (its committed HEAD) with one commit
appending a small private function to `--files` (20) Python files, reviewed with the shipped
`security` template (the tests check narrowed to the project's own quick command). Each tree
reviews it once untimed first: that writes the bytecode caches (PYTHONDONTWRITEBYTECODE is
unset for every process here) and fills the clone's check cache, so the timed reviews reuse
the checks' results and take about a second each; none of that is before the run exists.

Per round and tree, each in a fresh process and with a fresh database (so the database's
creation is counted, as on a first review):

- spawn → run created: `python -m reviewflow review ...`, from `time.time()` before the spawn
  to the run's `runs.created_at` in the database (the same clock).
- CPU and import time up to the database's open: the same command under `python -X importtime`
  with an audit hook that, at the review's `sqlite3.connect` (just before its run is stored),
  records the process's CPU (user+sys), its git children's CPU, and ends the process. Import
  time is the sum of the top-level entries of `-X importtime` up to then; these move less with
  other load than wall time does. `GIT_TRACE` counts the git processes.

Prints one JSON line per tree with the minimum and median of each measurement, and the load
average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from review import PROJECT, Setup, make_setup

PROBE = """
import os, sys
def opened(event, args):
    if event == "sqlite3.connect":
        t = os.times()
        sys.stderr.write(f"OPENED {t.user + t.system} {t.children_user + t.children_system}\\n")
        sys.stderr.flush()
        os._exit(0)
sys.addaudithook(opened)
sys.argv = ["reviewflow", *sys.argv[1:]]
from reviewflow.cli import main
main()
"""


def review_args(setup: Setup, run_id: str, db: Path) -> list[str]:
    return [
        "review",
        str(setup.clone),
        "--base",
        setup.base,
        "--template",
        str(setup.template),
        "--db",
        str(db),
        "--out",
        str(setup.tmp / "out" / run_id),
        "--run-id",
        run_id,
    ]


def tree_env(src: Path, git_trace: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    if git_trace is not None:
        env["GIT_TRACE"] = str(git_trace)
    return env


def spawn_to_created(setup: Setup, src: Path, run_id: str) -> float:
    db = setup.tmp / f"{run_id}.db"
    start = time.time()
    subprocess.run(
        [sys.executable, "-m", "reviewflow", *review_args(setup, run_id, db)],
        cwd=setup.workdir,
        env=tree_env(src),
        capture_output=True,
        check=False,
    )
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT created_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise SystemExit(f"{src}: the review stored no run {run_id}")
    return float(row[0]) - start


def up_to_open(setup: Setup, src: Path, run_id: str) -> dict[str, float]:
    trace = setup.tmp / f"{run_id}.git-trace"
    argv = review_args(setup, run_id, setup.tmp / f"{run_id}.db")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, *argv],
        cwd=setup.workdir,
        env=tree_env(src, trace),
        capture_output=True,
        text=True,
        check=False,
    )
    imports_us = modules = 0
    cpu = git_cpu = None
    for line in done.stderr.splitlines():
        if line.startswith("OPENED "):
            cpu, git_cpu = (float(v) for v in line.split()[1:3])
        elif line.startswith("import time:") and "self [us]" not in line:
            _, cumulative, name = line.split("|")
            modules += 1
            if not name[1:].startswith(" "):  # top level: its cumulative holds the nested ones
                imports_us += int(cumulative)
    if cpu is None or git_cpu is None:
        raise SystemExit(f"{src}: the review never opened its database:\n{done.stderr[-2000:]}")
    gits = sum(1 for line in trace.read_text().splitlines() if "trace: built-in: git " in line)
    return {
        "cpu_s": cpu,
        "git_cpu_s": git_cpu,
        "import_s": imports_us / 1e6,
        "modules": modules,
        "git_processes": gits,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--files", type=int, default=20, help="Python files changed (20)")
    parser.add_argument("--repo", type=Path, default=PROJECT, help="repository to clone")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="a reviewflow source folder to time (repeatable; default this checkout's src)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [PROJECT / "src"])]
    tmp = Path(tempfile.mkdtemp(prefix="rf-startup-"))
    try:
        setup = make_setup(tmp, args.repo, args.files, ["tests/unit"])
        for n, src in enumerate(trees):  # bytecode caches, the clone's check cache
            spawn_to_created(setup, src, f"warmup-{n}")
        rows: dict[Path, dict[str, list[float]]] = {src: {} for src in trees}
        load_start = os.getloadavg()
        for i in range(args.repeat):
            for n, src in enumerate(trees):
                got: dict[str, Any] = {"created_s": spawn_to_created(setup, src, f"r{i}-{n}")}
                got.update(up_to_open(setup, src, f"o{i}-{n}"))
                for key, value in got.items():
                    rows[src].setdefault(key, []).append(value)
        load_end = os.getloadavg()
        for src in trees:
            doc = {"tree": str(src), "rounds": args.repeat, "files": args.files}
            doc.update({key: summary(values) for key, values in rows[src].items()})
            doc["load_start"] = [round(v, 2) for v in load_start]
            doc["load_end"] = [round(v, 2) for v in load_end]
            print(json.dumps(doc), flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
