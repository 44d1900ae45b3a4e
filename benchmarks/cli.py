"""The user's path at scale: whole-process `reviewflow validate`, `run` and `status` on 1k and 10k
(and, with --big, 100k) task YAML files, beside the engine's time for the same workflow.

    python benchmarks/cli.py                  # 1k and 10k tasks, validate x5, run and status x3
    python benchmarks/cli.py --big            # + 100k tasks (several minutes)
    python benchmarks/cli.py --sizes 10000 --repeat 7

Each file is a DAG of no-op `python` tasks (`noop_tasks:noop`) in chains of 10 (a task needs the
one before it unless its index is a multiple of 10), each with a priority and a timeout, so that
parsing, validation (fields, DAG) and scheduling all have work. The CLI runs as a user runs it: a
fresh `reviewflow` process per command, the workflow a YAML file, the database a SQLite file;
the wall time includes start-up, imports, parsing and the report. Beside it, in this process
(imports already paid), the same steps through the Python API on the same kind of store:

- `validate`  ~ `load_workflow(FILE)` (read, parse, validate)
- `run`       ~ `Engine(SQLiteStore).submit(spec)` + `execute(run_id)` (the spec built beforehand)
- `status`    ~ `run_status(store, run_id)` on that finished run

Best and median of `--repeat` runs are reported (other load only adds time). One JSON line per
measurement, then a table; the first and last lines give the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RF = [sys.executable, "-m", "reviewflow"]
TARGETS_S = {("validate", 10_000): 0.5}
"""Whole-process targets (seconds, best run)."""


def write_workflow(path: Path, n: int) -> Path:
    """A YAML file of `n` no-op python tasks in chains of 10."""
    lines = [f"name: cli-bench-{n}", "tasks:"]
    for i in range(n):
        needs = f", needs: [t{i - 1}]" if i % 10 else ""
        lines.append(
            f"  t{i}: {{call: 'noop_tasks:noop', priority: {i % 3 + 1}, timeout: 30s{needs}}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ENGINE_CPU: list[float] = []
"""CPU seconds of this process for each timed call (the engine columns)."""


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - started)
        ENGINE_CPU.append(time.process_time() - cpu)
    return times, result


CPU: list[float] = []
"""CPU seconds (user + system) of each `reviewflow` process, in order: less sensitive to other
load than wall time (a busy machine still slows it through shared caches)."""


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*RF, *args], cwd=cwd, capture_output=True, text=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"reviewflow {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def row(command: str, n: int, process: list[float], engine: list[float]) -> dict[str, Any]:
    cpu = CPU[-len(process) :]
    engine_cpu = ENGINE_CPU[-len(engine) :] if engine else [0.0]
    engine = engine or [0.0]  # --version: the process alone
    doc = {
        "command": command,
        "tasks": n,
        "process_s_best": round(min(process), 3),
        "process_s_median": round(statistics.median(process), 3),
        "process_cpu_s_best": round(min(cpu), 3),
        "engine_s_best": round(min(engine), 3),
        "engine_cpu_s_best": round(min(engine_cpu), 3),
        "engine_s_median": round(statistics.median(engine), 3),
        "runs": len(process),
    }
    target = TARGETS_S.get((command, n))
    if target is not None:
        doc["target_s"] = target
        doc["pass"] = doc["process_s_best"] <= target
    print(json.dumps(doc), flush=True)
    return doc


def bench_size(n: int, tmp: Path, repeat: int) -> list[dict[str, Any]]:
    from reviewflow.config import load_workflow
    from reviewflow.engine import Engine
    from reviewflow.status import run_status
    from reviewflow.store import SQLiteStore

    wf = write_workflow(tmp / f"wf{n}.yaml", n)
    load_workflow(write_workflow(tmp / "warm.yaml", 10))  # first-use costs (task-type registry)
    rows = []

    process, _ = timed(lambda: cli(["validate", str(wf)], tmp), repeat)
    engine, spec = timed(lambda: load_workflow(wf), repeat)
    rows.append(row("validate", n, process, engine))

    runs = max(1, repeat if n <= 10_000 else 1)
    counter = iter(range(10**6))

    def run_cli() -> str:
        db = tmp / f"cli{n}-{next(counter)}.db"
        cli(["run", str(wf), "--db", str(db), "--run-id", "bench", "--json"], tmp)
        return str(db)

    process, db = timed(run_cli, runs)

    def run_engine() -> None:
        store = SQLiteStore(tmp / f"api{n}-{next(counter)}.db")
        try:
            eng = Engine(store, runs_dir=tmp / "runs")
            run_id, _ = eng.submit(spec)
            state = asyncio.run(eng.execute(run_id))
            assert state.value == "succeeded", state
        finally:
            store.close()

    engine, _ = timed(run_engine, runs)
    rows.append(row("run", n, process, engine))

    process, _ = timed(lambda: cli(["status", "bench", "--db", db], tmp), repeat)
    store = SQLiteStore(db)
    try:
        engine, _ = timed(lambda: run_status(store, "bench"), repeat)
    finally:
        store.close()
    rows.append(row("status", n, process, engine))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--big", action="store_true", help="add the 100k-task file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = args.sizes or [1_000, 10_000, *([100_000] if args.big else [])]
    sys.path.insert(0, str(HERE))  # noop_tasks, for the in-process runs
    import reviewflow

    print(
        json.dumps(
            {
                "meta": "start",
                "loadavg": os.getloadavg(),
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "reviewflow": str(Path(reviewflow.__file__).parent),
            }
        ),
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        process, _ = timed(lambda: cli(["--version"], Path(tmp)), max(1, args.repeat))
        rows.append(row("--version", 0, process, []))  # start-up alone, for scale
        for n in sizes:
            rows += bench_size(n, Path(tmp), max(1, args.repeat))
    print(json.dumps({"meta": "end", "loadavg": os.getloadavg()}), flush=True)
    print(
        f"\n{'command':<10} {'tasks':>7} {'process best':>13} {'median':>8} {'cpu best':>9}"
        f" {'engine best':>12} {'median':>8} {'cpu best':>9}  target"
    )
    for r in rows:
        target = ""
        if "target_s" in r:
            target = f"{'PASS' if r['pass'] else 'FAIL'} <= {r['target_s']} s"
        print(
            f"{r['command']:<10} {r['tasks']:>7} {r['process_s_best']:>11.3f} s"
            f" {r['process_s_median']:>6.3f} s {r['process_cpu_s_best']:>7.3f} s"
            f" {r['engine_s_best']:>10.3f} s"
            f" {r['engine_s_median']:>6.3f} s {r['engine_cpu_s_best']:>7.3f} s  {target}"
        )


if __name__ == "__main__":
    main()
