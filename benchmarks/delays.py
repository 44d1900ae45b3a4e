"""Accuracy of `delay`: how late a delayed task starts after its dependency finished.

    python benchmarks/delays.py

50 tasks depend on one root, each with `delay` = 100 ms + i x 7 ms; the error is the task's
start minus (root's finish + delay), from the stored timestamps. Prints JSON lines, then a table.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reviewflow import Engine, MemoryStore, SQLiteStore, validate_spec

TASKS = 50


def measure(kind: str) -> dict[str, float | str]:
    tasks: dict[str, dict[str, object]] = {"root": {"call": "noop_tasks:noop"}}
    for i in range(TASKS):
        tasks[f"d{i}"] = {"call": "noop_tasks:noop", "needs": ["root"], "delay": f"{100 + i * 7}ms"}
    spec = validate_spec({"name": "delays", "tasks": tasks})
    tmp = Path(tempfile.mkdtemp())
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp / "delays.db")
    asyncio.run(Engine(store, runs_dir=tmp / "runs").run(spec, run_id="r"))
    rows = {t.name: t for t in store.get_tasks("r")}
    root_end = rows["root"].finished_at
    errors = sorted(
        (rows[f"d{i}"].started_at - root_end - (0.1 + i * 0.007)) * 1000 for i in range(TASKS)
    )
    return {
        "name": f"delay_error_{kind}",
        "samples": TASKS,
        "min_ms": round(errors[0], 3),
        "p50_ms": round(statistics.median(errors), 3),
        "max_ms": round(errors[-1], 3),
    }


def main() -> None:
    results = [measure(kind) for kind in ("memory", "sqlite")]
    for r in results:
        print(json.dumps(r))
    print(f"{'measurement':<22} {'min':>8} {'p50':>8} {'max':>8}  (ms late)")
    for r in results:
        print(f"{r['name']:<22} {r['min_ms']:>8} {r['p50_ms']:>8} {r['max_ms']:>8}")


if __name__ == "__main__":
    main()
