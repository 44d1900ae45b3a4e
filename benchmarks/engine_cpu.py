"""CPU time the embedded engine spends on a run: for A/B comparisons on a loaded machine.

Wall-clock throughput (benchmarks/engine.py) swings by ±30% when other processes share the
cores; the CPU time this process uses (user + system, `getrusage`) swings far less, since waiting
for a core is not counted. Each workload runs `--repeats` times on a MemoryStore; the best is
printed (JSON, milliseconds). Compare two trees by alternating them:

    PYTHONPATH=/tmp/before/src python benchmarks/engine_cpu.py
    PYTHONPATH=src python benchmarks/engine_cpu.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # noop_tasks

from reviewflow import validate_spec
from reviewflow.engine import Engine
from reviewflow.spec import WorkflowSpec
from reviewflow.store import MemoryStore


def spec(shape: str, n: int) -> WorkflowSpec:
    """ "wide" and "chain" of no-op tasks; "stopped": a wide run whose last task fails at
    once, so that `fail_fast` cancels the other attempts (the rule book's stop path)."""
    tasks: dict[str, dict[str, object]] = {}
    for i in range(n):
        body: dict[str, object] = {"type": "python", "call": "noop_tasks:noop"}
        if shape == "chain" and i:
            body["needs"] = [f"t{i - 1}"]
        if shape == "stopped":
            body["call"] = "noop_tasks:wait_or_fail"
            body["params"] = {"fail": i == n - 1, "wait": i != n - 1}
            body["retry"] = {"max_retries": 0}
        tasks[f"t{i}"] = body
    return validate_spec({"name": "cpu", "tasks": tasks})


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import reviewflow

    out: dict[str, object] = {"package": reviewflow.__file__, "loadavg": os.getloadavg()}
    with tempfile.TemporaryDirectory() as runs:
        for shape, n in (("wide", 10_000), ("chain", 2_000), ("stopped", 5_000)):
            times = []
            for _ in range(args.repeats):
                workflow = spec(shape, n)
                engine = Engine(MemoryStore(), max_concurrency=10_000, runs_dir=runs)
                before = cpu()
                asyncio.run(engine.run(workflow))
                times.append(cpu() - before)
            out[f"{shape}_{n}_cpu_ms"] = round(min(times) * 1000, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
