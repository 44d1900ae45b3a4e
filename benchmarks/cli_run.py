"""`reviewflow run` of big workflows, whole process, as a user runs it from a script or CI.

    python benchmarks/cli_run.py                   # 2,000 and 10,000 tasks, 3 runs each
    python benchmarks/cli_run.py --tasks 500 --repeat 5
    PYTHONPATH=/tmp/copy/src python benchmarks/cli_run.py   # another copy of the package

Each run writes a workflow of N independent no-op `python` tasks (`noop_tasks:noop`, copied next
to it), then times `python -m reviewflow run wf.yaml --db <fresh file>` from start to exit with
stdout and stderr piped (no terminal: the plain progress lines and the end-of-run report). It
reports wall and CPU time (best and median) and how many lines and bytes the command printed:
the output is part of what is measured.

Prints one JSON line per size, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_workflow(path: Path, tasks: int) -> None:
    lines = [f"name: wide{tasks}", "tasks:"]
    lines += [f"  t{i:05d}: {{call: 'noop_tasks:noop'}}" for i in range(tasks)]
    path.write_text("\n".join(lines) + "\n")


def one_run(work: Path, tasks: int, index: int) -> dict[str, float | int]:
    db = work / f"rf{index}.db"
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("REVIEWFLOW_DB", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reviewflow", "run", "wf.yaml", "--db", str(db)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"reviewflow run exited {done.returncode}: {done.stderr[-2000:]}")
    return {
        "wall_s": wall,
        "cpu_s": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        "stdout_lines": done.stdout.count("\n"),
        "stdout_bytes": len(done.stdout.encode()),
        "stderr_lines": done.stderr.count("\n"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="*", default=[2000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(HERE / "noop_tasks.py", work / "noop_tasks.py")
        for size in args.tasks:
            write_workflow(work / "wf.yaml", size)
            runs = [one_run(work, size, i) for i in range(max(1, args.repeat))]
            walls = [r["wall_s"] for r in runs]
            cpus = [r["cpu_s"] for r in runs]
            row = {
                "tasks": size,
                "wall_s_best": round(min(walls), 3),
                "wall_s_median": round(statistics.median(walls), 3),
                "cpu_s_best": round(min(cpus), 3),
                "stdout_lines": runs[-1]["stdout_lines"],
                "stdout_bytes": runs[-1]["stdout_bytes"],
                "stderr_lines": runs[-1]["stderr_lines"],
                "load_1m": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'tasks':>7} {'wall best':>10} {'median':>8} {'cpu best':>9} {'stdout':>16}")
    for r in rows:
        print(
            f"{r['tasks']:>7} {r['wall_s_best']:>9.2f}s {r['wall_s_median']:>7.2f}s"
            f" {r['cpu_s_best']:>8.2f}s {r['stdout_lines']:>7} lines"
        )


if __name__ == "__main__":
    main()
