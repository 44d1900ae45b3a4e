"""/metrics' store gauges: one scrape's time and CPU, counted by the database (what the server
does) against loading the recent runs with their specs record by record (what it did before),
on the same SQLite file, back to back. Every 50th run is live (half its tasks ready, with
priorities in its spec), the others finished.

    python benchmarks/metrics_scrape.py              # 1,000 runs of 100 tasks, 200 of 1,000
    python benchmarks/metrics_scrape.py --runs 500 --tasks 2000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from prometheus_client import generate_latest

from reviewflow.server.metrics import Metrics
from reviewflow.store import RunRecord, SQLiteStore, TaskRecord


def fill(store: SQLiteStore, n_runs: int, n_tasks: int) -> int:
    now = time.time()
    tasks = {
        f"t{j}": {"type": "shell", "run": ["true"], "priority": "high" if j % 3 else "low"}
        for j in range(n_tasks)
    }
    spec = json.dumps({"name": "w", "tasks": tasks})
    for i in range(n_runs):
        live = i % 50 == 0
        states = [
            ("ready" if j % 2 else "running") if live else "succeeded" for j in range(n_tasks)
        ]
        rows = [TaskRecord(f"r{i}", f"t{j}", s) for j, s in enumerate(states)]
        state = "running" if live else "succeeded"
        store.create_run(RunRecord(f"r{i}", "w", state, spec, {}, now + i, now + i, None), rows, [])
    return len(spec)


def scrape(store: SQLiteStore, by_records: bool, repeat: int) -> tuple[float, float, bytes]:
    metrics = Metrics(store)
    if by_records:
        metrics.collector._scan = metrics.collector._scan_records  # type: ignore[method-assign]
    out = generate_latest(metrics.registry)  # the first scrape reads live specs once
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        assert generate_latest(metrics.registry) == out
    return (time.perf_counter() - wall) / repeat, (time.process_time() - cpu) / repeat, out


def gauges(text: bytes) -> list[str]:
    names = ("reviewflow_runs{", "reviewflow_tasks{", "reviewflow_queue_depth{")
    return [line for line in text.decode().splitlines() if line.startswith(names)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int)
    ap.add_argument("--tasks", type=int)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sizes = [(args.runs, args.tasks)] if args.runs and args.tasks else [(1000, 100), (200, 1000)]
    print("load average", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for n_runs, n_tasks in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "metrics.db")
            size = fill(store, n_runs, n_tasks)
            old = scrape(store, True, args.repeat)
            new = scrape(store, False, args.repeat)
            store.close()
        assert gauges(old[2]) == gauges(new[2]), "the two counts differ"
        print(
            f"{n_runs} runs x {n_tasks} tasks (spec {size / 1000:.0f} kB): by records "
            f"{old[0] * 1000:.1f} ms ({old[1] * 1000:.1f} ms CPU), in the database "
            f"{new[0] * 1000:.1f} ms ({new[1] * 1000:.1f} ms CPU)"
        )
    print("load average", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
