"""Notifications: what the outbox costs a run, how soon a notification arrives, how fast a
backlog drains. A local webhook receiver on 127.0.0.1 answers every request at once.

    python benchmarks/notifications.py                       # SQLite
    python benchmarks/notifications.py --pg postgresql://…   # SQLite and PostgreSQL
    python benchmarks/notifications.py --local-pg            # PostgreSQL started here (tests/pg.py)
    python benchmarks/notifications.py --runs 50 --backlog 500

- `run`: mean wall time of one run (two shell tasks `true`, submit + execute in this process)
  without notifications, and with one webhook target while this process's deliverer sends.
- `latency`: from the run's end as stored (`finished_at`) to the receiver reading the request
  (p50 / p99 / max) — the commit, the deliverer's wake-up, httpx and the loopback.
- `first`: the first notification a process sends (enqueue to arrival): httpx is imported and
  its client made then, in the deliverer's threads.
- `backlog`: `--backlog` rows enqueued at once, then one deliverer (4 sending threads) sends
  them all: notifications per second.

One JSON line per measurement, then a table; the first and last lines give the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reviewflow.engine import Engine
from reviewflow.notify.deliver import Deliverer
from reviewflow.spec import validate_spec
from reviewflow.store import open_store
from reviewflow.store.outbox import OutboxItem

RESULTS: list[dict[str, Any]] = []


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                self.send_response(204)
                self.end_headers()
                with receiver.cond:
                    receiver.arrived.setdefault(json.loads(body)["delivery_id"], at)
                    receiver.cond.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 120.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.arrived) >= n, timeout)


def emit(**row: Any) -> None:
    RESULTS.append(row)
    print(json.dumps(row), flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spec(url: str | None) -> Any:
    doc: dict[str, Any] = {
        "name": "bench",
        "tasks": {"a": {"run": ["true"]}, "b": {"run": ["true"], "needs": ["a"]}},
    }
    if url:
        doc["notifications"] = [{"kind": "webhook", "url": url, "events": ["run_finished"]}]
    return validate_spec(doc)


def bench(db: str, label: str, runs: int, backlog: int, receiver: Receiver, tmp: Path) -> None:
    store = open_store(db)
    engine = Engine(store, runs_dir=tmp / "runs", flush_interval=0.01)
    deliverer = Deliverer(store).start()
    try:
        # The process's first send imports httpx and makes its client (TLS context): measured
        # apart, then the runs below see a warm deliverer, as a server or worker does.
        before = len(receiver.arrived)
        started = time.perf_counter()
        target = {"kind": "webhook", "url": receiver.url, "timeout": 10}
        store.enqueue([OutboxItem("webhook", f"{label}-warm-{time.time()}", {}, target=target)])
        assert receiver.wait(before + 1), "warm-up not delivered"
        emit(db=label, measure="first", ms=round(1000 * (time.perf_counter() - started), 1))
        for with_targets in (False, True):
            plan = spec(receiver.url if with_targets else None)
            walls = []
            ids = []
            for _ in range(runs):
                started = time.perf_counter()
                run_id, _ = engine.submit(plan)
                asyncio.run(engine.execute(run_id))
                walls.append(time.perf_counter() - started)
                ids.append(run_id)
            name = "with a webhook target" if with_targets else "no notifications"
            emit(
                db=label,
                measure="run",
                case=name,
                runs=runs,
                mean_ms=round(1000 * statistics.mean(walls), 1),
            )
            if with_targets:
                rows = {r.run_id: r for r in store.list_outbox(limit=runs * 2)}
                lat = []
                for rid in ids:
                    row = rows[rid]
                    run = store.get_run(rid)
                    assert run is not None and run.finished_at is not None
                    with receiver.cond:
                        receiver.cond.wait_for(lambda r=row: r.delivery_id in receiver.arrived, 60)
                        lat.append(receiver.arrived[row.delivery_id] - run.finished_at)
                emit(
                    db=label,
                    measure="latency",
                    runs=runs,
                    p50_ms=round(1000 * pct(lat, 0.5), 1),
                    p99_ms=round(1000 * pct(lat, 0.99), 1),
                    max_ms=round(1000 * max(lat), 1),
                )
        before = len(receiver.arrived)
        items = [
            OutboxItem(
                "webhook",
                f"{label}-backlog-{i}-{time.time()}",
                {"event": "run_finished"},
                target={"kind": "webhook", "url": receiver.url, "timeout": 10},
            )
            for i in range(backlog)
        ]
        started = time.perf_counter()
        store.enqueue(items)
        assert receiver.wait(before + backlog), "backlog not delivered"
        took = time.perf_counter() - started
        emit(
            db=label,
            measure="backlog",
            rows=backlog,
            seconds=round(took, 2),
            per_second=round(backlog / took, 1),
        )
    finally:
        deliverer.stop()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backlog", type=int, default=300)
    parser.add_argument("--pg", help="a PostgreSQL URL (an empty database) to measure too")
    parser.add_argument("--local-pg", action="store_true", help="start a throwaway PostgreSQL")
    args = parser.parse_args()
    server = None
    if args.local_pg:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import pg  # tests/pg.py

        server = pg.start_session_server()
        args.pg = server.new_database()
    print(json.dumps({"loadavg": os.getloadavg()}), flush=True)
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        bench(str(Path(tmp) / "bench.db"), "sqlite", args.runs, args.backlog, receiver, Path(tmp))
        if args.pg:
            bench(args.pg, "postgres", args.runs, args.backlog, receiver, Path(tmp))
    if server is not None:
        server.stop()
    print(json.dumps({"loadavg": os.getloadavg()}), flush=True)
    print(f"\n{'db':<9} {'measure':<9} result")
    for r in RESULTS:
        rest = {k: v for k, v in r.items() if k not in ("db", "measure")}
        print(f"{r['db']:<9} {r['measure']:<9} {rest}")


if __name__ == "__main__":
    sys.exit(main())
