"""Resource use of shell tasks: CPU time from the reaped process's rusage, peak RSS sampled."""

from __future__ import annotations

import json
import sys

from reviewflow.states import RunState
from reviewflow.status import run_status
from rfhelpers import arun, tasks_by_name, workflow

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
ALLOC = (
    "import time\nb = bytearray(64 * 1024 * 1024)\nb[::4096] = b'x' * len(b[::4096])\n"
    "time.sleep(0.6)\n"
)


def test_shell_task_reports_its_cpu_time_and_peak_rss(store, make_engine):
    spec = workflow(
        {
            "burn": {"type": "shell", "run": [sys.executable, "-c", BURN]},
            "alloc": {"type": "shell", "run": [sys.executable, "-c", ALLOC]},
            "idle": {"type": "shell", "run": ["sleep", "0.2"]},
        }
    )
    engine = make_engine(store)
    run_id, _ = engine.submit(spec)
    assert arun(engine.execute(run_id)) is RunState.SUCCEEDED
    results = {n: json.loads(t.result) for n, t in tasks_by_name(store, run_id).items()}
    assert results["burn"]["cpu_s"] >= 0.3
    assert results["idle"]["cpu_s"] < 0.1  # sleeping costs (almost) no CPU
    assert results["alloc"]["max_rss_kib"] >= 64 * 1024
    assert results["idle"]["max_rss_kib"] < 64 * 1024
    metrics = run_status(store, run_id)["metrics"]
    assert metrics["task_cpu_s"]["total"] >= 0.3
    assert metrics["task_cpu_s"]["max"] == results["burn"]["cpu_s"]
    assert metrics["task_max_rss_kib"] == results["alloc"]["max_rss_kib"]
