"""CLI start-up: how long `reviewflow` spends importing before a command does anything.

Each case runs in fresh subprocesses under `python -X importtime`; the import time of a case is
the sum of the top-level entries of that tree (what importing cost, in microseconds, as Python
measured it), and the best of `--repeat` runs is kept because other load only ever adds time.
Wall time of the whole process is reported beside it. Heavy modules that a case imported
(psycopg, fastapi, ...) are listed so a regression names its cause.

    python benchmarks/cli_startup.py              # all cases, 7 runs each
    python benchmarks/cli_startup.py --repeat 15  # steadier minimum on a busy machine

Prints one JSON line per case, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = (
    "psycopg",
    "psycopg_pool",
    "fastapi",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "reviewflow.cluster",
    "reviewflow.server",
    "reviewflow.review",
    "reviewflow.engine",
    "pydantic",
    "yaml",
    "structlog",
    "asyncio",
)
TARGET_MS = 150.0


def _parse(stderr: str) -> tuple[float, set[str]]:
    """Sum of the top-level cumulative times (ms) and every module name imported."""
    total_us = 0
    names: set[str] = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|", 2)
        if not cumulative.strip().isdigit():
            continue  # the header line
        if not name.startswith("  "):  # one space after "|" marks a top-level import
            total_us += int(cumulative)
        names.add(name.strip())
    return total_us / 1000, names


def _cases(db: str) -> dict[str, list[str]]:
    py = [sys.executable, "-X", "importtime"]
    return {
        "import reviewflow.cli": [*py, "-c", "import reviewflow.cli"],
        "reviewflow --version": [*py, "-m", "reviewflow", "--version"],
        "reviewflow --help": [*py, "-m", "reviewflow", "--help"],
        "reviewflow status": [*py, "-m", "reviewflow", "status", "--db", db],
        "reviewflow pause RUN": [*py, "-m", "reviewflow", "pause", "nope", "--db", db],
    }


def _prepare_db(tmp: Path) -> str:
    """A SQLite database holding one finished run, so `status` lists something."""
    wf = tmp / "wf.yaml"
    wf.write_text('name: one\ntasks:\n  a: {type: shell, run: ["true"]}\n')
    db = str(tmp / "rf.db")
    subprocess.run(
        [sys.executable, "-m", "reviewflow", "run", str(wf), "--db", db],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = _prepare_db(Path(tmp))
        # As a user's machine runs them: with bytecode caches (PYTHONDONTWRITEBYTECODE, set on
        # some CI and development machines, makes every run compile reviewflow's modules again).
        env = {**os.environ, "COLUMNS": "100"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for case, argv in _cases(db).items():
            imports, walls, cpus, heavy = [], [], [], set()
            for _ in range(max(1, args.repeat)):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, env=env)
                walls.append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
                ms, names = _parse(done.stderr)
                imports.append(ms)
                heavy = {h for h in HEAVY if h in names}
            row = {
                "case": case,
                "import_ms_best": round(min(imports), 1),
                "import_ms_median": round(sorted(imports)[len(imports) // 2], 1),
                "wall_ms_best": round(min(walls) * 1000, 1),
                "cpu_ms_best": round(min(cpus) * 1000, 1),
                "heavy_imported": sorted(heavy),
                "exit": done.returncode,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        f"\n{'case':<24} {'import best':>12} {'median':>8} {'wall best':>10} {'cpu best':>9}"
        "  heavy modules"
    )
    for r in rows:
        ok = "PASS" if r["import_ms_best"] <= TARGET_MS else "FAIL"
        print(
            f"{r['case']:<24} {r['import_ms_best']:>10.1f}ms {r['import_ms_median']:>6.1f}ms"
            f" {r['wall_ms_best']:>8.1f}ms {r['cpu_ms_best']:>7.1f}ms"
            f"  {', '.join(r['heavy_imported']) or '-'}  "
            f"[{ok} <= {TARGET_MS:.0f} ms]"
        )


if __name__ == "__main__":
    main()
