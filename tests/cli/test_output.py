"""What `reviewflow` prints when its output is not a terminal (CI logs, pipes, files).

One line per event and never the same event twice (no plain line plus a JSON log line), ids
and paths whole whatever COLUMNS says, counts that mean what they say for a cancelled run, a
summary instead of one row per task for big runs, and JSON for scripts. Every test runs the
installed `reviewflow` as a real process with its output piped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from clihelpers import Procs, query, run_state, sh, try_query, wait_for, write_workflow

LONG_ID = "pr-" + "x" * 150


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_a_retry_and_a_failure_are_each_reported_once(procs: Procs, tmp_path: Path) -> None:
    retry = {"max_retries": 1, "base_delay": 0.01, "jitter": False}
    write_workflow(
        tmp_path / "wf.yaml",
        {"flaky": sh("exit 3", retry=retry), "ok": sh("true")},
    )
    done = procs.run("run", "wf.yaml", "--db", "rf.db", "--run-id", "r1")
    assert done.returncode == 1
    both = done.stdout + done.stderr
    assert len(lines_with(both, "retry_wait")) == 1, both
    assert len(lines_with(both, "flaky: failed")) == 1, both
    assert not lines_with(both, '"event": "transition"'), both  # no JSON copy on stderr
    # Logs asked for are logs given, next to the progress lines.
    asked = procs.run("run", "wf.yaml", "--db", "rf.db", "--log-format", "json")
    records = [json.loads(line) for line in asked.stderr.splitlines() if line.startswith("{")]
    assert [r["to_state"] for r in records if r.get("task") == "flaky"].count("retry_wait") == 1


def test_ids_and_paths_are_never_cut_at_80_columns(procs: Procs, tmp_path: Path) -> None:
    write_workflow(tmp_path / "wf.yaml", {"a": sh("exit 3", retry={"max_retries": 0})})
    os.environ["COLUMNS"] = "80"  # what a CI runner without a terminal reports
    try:
        done = procs.run("run", "wf.yaml", "--db", "rf.db", "--run-id", LONG_ID)
        status = procs.run("status", LONG_ID, "--db", "rf.db")
        listing = procs.run("status", "--db", "rf.db")
        history = procs.run("events", LONG_ID, "--db", "rf.db")
    finally:
        del os.environ["COLUMNS"]
    log_path = f".reviewflow/runs/{LONG_ID}/a.1.log"
    assert (tmp_path / log_path).exists()
    for shown in (done.stdout, status.stdout, history.stdout):
        assert log_path in shown, shown
    assert LONG_ID in listing.stdout
    for output in (done.stdout, status.stdout, listing.stdout, history.stdout):
        assert all(line == line.rstrip() for line in output.splitlines())
        assert "…" not in output


def test_a_cancelled_run_reports_cancelled_tasks_not_a_success_rate(
    procs: Procs, tmp_path: Path
) -> None:
    write_workflow(
        tmp_path / "wf.yaml",
        {"a": sh("true"), "b": sh("sleep 60", needs=["a"]), "c": sh("true", needs=["b"])},
    )
    db = tmp_path / "rf.db"
    runner = procs.start("run", "wf.yaml", "--db", "rf.db", "--run-id", "c1", run_id="c1")
    b_state = "SELECT state FROM tasks WHERE run_id = 'c1' AND name = 'b'"
    wait_for(lambda: db.exists() and try_query(db, b_state) == [("running",)], "b running")
    cancelled = procs.run("cancel", "c1", "--db", "rf.db", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == {"run_id": "c1", "state": "cancelled"}
    code, out, _ = procs.finish(runner)
    assert code == 1
    shown = procs.run("status", "c1", "--db", "rf.db").stdout
    for report in (out, shown):
        assert "tasks 3 (succeeded 1, cancelled 2)" in report, report
        assert "%" not in report
    assert run_state(db, "c1") == "cancelled"
    # For scripts too: rates over the tasks that finished, the cancelled ones included.
    metrics = json.loads(procs.run("status", "c1", "--db", "rf.db", "--json").stdout)["metrics"]
    assert metrics["tasks_by_state"] == {"cancelled": 2, "succeeded": 1}
    rates = (metrics["success_rate"], metrics["failure_rate"], metrics["cancel_rate"])
    assert rates == (0.3333, 0.0, 0.6667)


def test_a_big_run_ends_with_a_summary_not_a_row_per_task(procs: Procs, tmp_path: Path) -> None:
    tasks = {f"t{i:03d}": {"call": "cli_tasks:noop"} for i in range(120)}
    tasks["slow"] = sh("sleep 0.3")
    tasks["bad"] = sh("exit 3", retry={"max_retries": 0}, needs=["slow"])  # fails last
    write_workflow(tmp_path / "wf.yaml", tasks)
    done = procs.run("run", "wf.yaml", "--db", "rf.db", "--run-id", "big")
    assert done.returncode == 1, done.stderr
    report = done.stdout[done.stdout.index("big failed  workflow") :]
    assert "tasks 122 (succeeded 121, failed 1)" in report
    assert "failures (1):" in report
    assert [line.split()[:3] for line in lines_with(report, "bad")][-1] == ["bad", "failed", "1"]
    slowest = report[report.index("slowest 10:") :].splitlines()[2:12]
    assert slowest[0].startswith("slow  "), slowest
    assert len(lines_with(report, "succeeded  1")) <= 10  # no row per task
    assert "`reviewflow status big --all` lists every one" in report

    every = procs.run("status", "big", "--db", "rf.db", "--all").stdout
    assert {f"t{i:03d}" for i in range(120)} <= {line.split(" ")[0] for line in every.splitlines()}
    assert query(tmp_path / "rf.db", "SELECT count(*) FROM tasks WHERE run_id='big'") == [(122,)]


def test_json_for_scripts(procs: Procs, tmp_path: Path) -> None:
    write_workflow(tmp_path / "wf.yaml", {"a": sh("true")})
    valid = procs.run("validate", "wf.yaml", "--json")
    assert valid.returncode == 0
    assert json.loads(valid.stdout) == {
        "file": "wf.yaml",
        "ok": True,
        "workflow": "wf",
        "tasks": 1,
        "on_failure": 0,
    }
    (tmp_path / "bad.yaml").write_text("name: wf\ntasks: {a: {type: nope}}\n")
    invalid = procs.run("validate", "bad.yaml", "--json")
    assert invalid.returncode == 2
    doc = json.loads(invalid.stdout)
    assert (doc["ok"], doc["file"]) == (False, "bad.yaml")
    assert invalid.stderr.strip() == f"error: {doc['error']}"
    upgraded = procs.run("db", "upgrade", "--db", "rf.db", "--json")
    assert json.loads(upgraded.stdout) == {"db": "rf.db", "applied": []}
    procs.run("run", "wf.yaml", "--db", "rf.db", "--run-id", "j1")
    paused = procs.run("pause", "j1", "--db", "rf.db", "--json")
    assert paused.returncode == 1
    assert paused.stdout == ""
    assert paused.stderr.strip() == "error: run j1 already ended: succeeded"
