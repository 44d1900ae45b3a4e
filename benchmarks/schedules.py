"""Scheduling accuracy: N schedules firing every second for S seconds, fired by K schedulers.

    python benchmarks/schedules.py            # 100 schedules, 60 s, SQLite and PostgreSQL, 2 each
    python benchmarks/schedules.py --seconds 20 --backend sqlite
    python benchmarks/schedules.py --db postgresql://...    # an existing (empty) database

Each scheduler is a `reviewflow.schedules.Scheduler` with its own store handle (as separate
processes would have), in its own thread, storing runs as `reviewflow scheduler --no-execute`
does (SQLite: Engine.submit; PostgreSQL: queued for workers). PostgreSQL is a throwaway server
(tests/pg.py) with its default durability (fsync on). Reported per backend:

- lateness: from a slot's firing time (slot + jitter, here 0) to its run stored — p50, p99, max;
- missed: slots inside the measured window with no run;
- duplicates: slots with more than one run (the run id is schedule + slot, so the database's
  primary key refuses a second one: expected 0), and `refired`, the slots a scheduler fired again
  and found already done (a lease taken over; expected 0 without crashes).

Targets (issue 14): p99 <= 250 ms, max <= 1 s, 0 missed, 0 duplicates. Prints one JSON line per
backend, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _workflow(i: int) -> Any:
    from reviewflow.config import validate_spec

    return validate_spec(
        {
            "name": f"bench{i:03d}",
            "tasks": {"noop": {"type": "shell", "run": ["true"]}},
            "schedules": [{"interval": "1s", "catchup": "all"}],
        }
    )


def _scheduler(store: Any, postgres: bool, owner: str) -> Any:
    """As `reviewflow scheduler --no-execute` (PostgreSQL) or `reviewflow scheduler` (SQLite)
    makes it: runs stored for workers in one transaction per claim, or by the engine."""
    from reviewflow.schedules import Scheduler

    if postgres:
        from reviewflow.cluster.queue import Cluster

        cluster = Cluster(store)
        return Scheduler(
            store,
            lambda spec, rid, meta: cluster.submit(spec, run_id=rid, meta=meta),
            owner=owner,
            submit_many=cluster.submit_many,
        )
    from reviewflow.engine import Engine

    engine = Engine(store)
    return Scheduler(
        store, lambda spec, rid, meta: engine.submit(spec, run_id=rid, meta=meta), owner=owner
    )


def measure(open_store: Any, postgres: bool, n: int, seconds: float, k: int) -> dict[str, Any]:
    from reviewflow.schedules import register

    setup = open_store()
    start = time.time() + 1.0
    for i in range(n):
        register(setup, _workflow(i), now=start - 0.5)
    handles = [open_store() for _ in range(k)]
    fired: list[Any] = []
    lock = threading.Lock()

    def record(f: Any) -> None:
        with lock:
            fired.append(f)

    threads = [_scheduler(h, postgres, f"bench-{j}").start(record) for j, h in enumerate(handles)]
    time.sleep(max(0.0, start + seconds - time.time()))
    for _, stop in threads:
        stop.set()
    for thread, _ in threads:
        thread.join(30)
    end = start + seconds
    window = [s for s in range(int(start), int(end))]  # slots every whole second
    runs = [r for r in setup.list_runs(limit=n * (int(seconds) + 10)) if "schedule" in r.meta]
    per_slot: dict[tuple[str, str], int] = {}
    for r in runs:
        key = (r.meta["schedule"], r.meta["slot"])
        per_slot[key] = per_slot.get(key, 0) + 1
    from reviewflow.cadence import slot_text

    missed = sum(
        1
        for i in range(n)
        for s in window
        if s >= start and (f"bench{i:03d}", slot_text(float(s))) not in per_slot
    )
    late = sorted(f.late for f in fired if f.created and start <= f.slot < end)
    for h in (setup, *handles):
        h.close()
    q = statistics.quantiles(late, n=100) if len(late) > 1 else [0.0] * 99
    return {
        "backend": "postgresql" if postgres else "sqlite",
        "schedules": n,
        "seconds": seconds,
        "schedulers": k,
        "fired": len(late),
        "late_p50_ms": round(q[49] * 1000, 1),
        "late_p99_ms": round(q[98] * 1000, 1),
        "late_max_ms": round(max(late, default=0.0) * 1000, 1),
        "missed": missed,
        "duplicates": sum(1 for c in per_slot.values() if c > 1),
        "refired": sum(1 for f in fired if not f.created),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--db", help="an existing PostgreSQL database URL (else a throwaway one)")
    args = parser.parse_args()
    from reviewflow.logs import configure_logging

    configure_logging("json", "WARNING")  # not a line per fired slot
    results = []
    if args.backend in ("sqlite", "both"):
        from reviewflow.store import SQLiteStore

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sched.db"
            results.append(
                measure(
                    lambda: SQLiteStore(path), False, args.schedules, args.seconds, args.schedulers
                )
            )
            print(json.dumps(results[-1]), flush=True)
    if args.backend in ("postgres", "both"):
        from reviewflow.store.postgres import PostgresStore

        local = None
        url = args.db
        if url is None:
            sys.path.insert(0, str(ROOT / "tests"))
            import pg

            bindir = pg.find_bindir()
            if bindir is None:
                raise SystemExit("no PostgreSQL server binaries (initdb, postgres); use --db")
            for key in ("fsync", "synchronous_commit", "full_page_writes"):
                pg.SETTINGS.pop(key, None)  # PostgreSQL's defaults: durable commits
            local = pg.LocalServer(bindir)
            url = local.url
        try:
            results.append(
                measure(
                    lambda: PostgresStore(url), True, args.schedules, args.seconds, args.schedulers
                )
            )
            print(json.dumps(results[-1]), flush=True)
        finally:
            if local is not None:
                local.stop()
    print()
    print(
        f"{'backend':<11} {'fired':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'missed':>7} {'dupl.':>6} {'load':>5}"
    )
    for r in results:
        print(
            f"{r['backend']:<11} {r['fired']:>6} {r['late_p50_ms']:>8} {r['late_p99_ms']:>8} "
            f"{r['late_max_ms']:>8} {r['missed']:>7} {r['duplicates']:>6} {r['load_avg_1m']:>5}"
        )


if __name__ == "__main__":
    main()
