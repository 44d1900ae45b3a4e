"""The `reviewflow` command, in-process (typer's CliRunner on `reviewflow.cli.app`) and, where the
console script itself matters, as a real process.

Each test works in its own tmp_path (the cwd) with `--db <tmp_path>/rf.db`; shell tasks record
what ran in files there, so "ran once" is counted, not assumed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from clihelpers import (
    Cli,
    Procs,
    one_line_error,
    query,
    record,
    recorded,
    review_workflow,
    sh,
    write_workflow,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewflow import Engine, SQLiteStore, load_workflow

TASK_KEYS = {
    "name",
    "state",
    "attempts",
    "started_at",
    "finished_at",
    "duration_s",
    "result",
    "error",
}
METRIC_KEYS = {
    "duration_s",
    "tasks_by_state",
    "success_rate",
    "failure_rate",
    "retry_rate",
    "wait_time_s",
    "run_time_s",
    "throughput_tasks_per_s",
}


def status_json(cli: Cli, run_id: str) -> dict[str, Any]:
    result = cli("status", run_id, "--db", cli.db, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------- validate


def test_validate_ok(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml", on_failure={"notify": sh("true")})
    result = cli("validate", "wf.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "wf.yaml: ok (review: 3 tasks, 1 on_failure)"
    assert result.stderr == ""


def test_validate_applies_set(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    assert cli("validate", "wf.yaml", "--set", "tasks.lint.timeout=5m").exit_code == 0
    result = cli("validate", "wf.yaml", "--set", "tasks.lint.timeout=forever")
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert "task 'lint': field 'timeout'" in line


BAD_FILES = {
    "cycle": (
        "name: wf\ntasks:\n  a: {run: [x], needs: [b]}\n  b: {run: [x], needs: [a]}\n",
        ["wf.yaml:3: task 'a': field 'needs': cycle: a -> b -> a"],
    ),
    "duplicate": (
        "name: wf\ntasks:\n  a: {run: [x]}\n  a: {run: [y]}\n",
        ["wf.yaml", "duplicate key 'a'", "line 4"],
    ),
    "unknown-type": (
        "name: wf\ntasks:\n  a: {type: docker}\n",
        ["wf.yaml:3:", "unknown task type 'docker'", "python", "shell"],
    ),
    "missing-call": (
        "name: wf\ntasks:\n  ok: {run: [x]}\n  a: {type: python}\n",
        ["wf.yaml:4: task 'a': field 'call'"],
    ),
    "typo": (
        "name: wf\ntasks:\n  a: {run: [x], retires: 3}\n",
        ["wf.yaml:3: task 'a': field 'retires': unknown field"],
    ),
    "unknown-dep": (
        "name: wf\ntasks:\n  a: {run: [x], needs: [ghost]}\n",
        ["unknown dependency 'ghost'"],
    ),
    "bad-duration": (
        "name: wf\ntimeout: 10 minutes\ntasks:\n  a: {run: [x]}\n",
        ["wf.yaml: field 'timeout': bad duration"],
    ),
    "missing-var": (
        "name: wf\ntasks:\n  a: {run: [echo, '${RF_SURELY_UNSET_VAR}']}\n",
        ["RF_SURELY_UNSET_VAR is not set"],
    ),
    "empty": ("", ["wf.yaml: the file is empty"]),
    "not-a-mapping": ("[1, 2]\n", ["must be a mapping"]),
    "bad-yaml": ("name: wf\ntasks: {a: [\n", ["wf.yaml: line "]),
    "unsafe-tag": ("name: !!python/name:os.system x\n", ["wf.yaml: line 1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_validate_bad_files(cli: Cli, case: str) -> None:
    text, fragments = BAD_FILES[case]
    (cli.cwd / "wf.yaml").write_text(text)
    result = cli("validate", "wf.yaml")
    assert result.exit_code == 2, result.output
    line = one_line_error(result.stderr)
    for fragment in fragments:
        assert fragment in line
    assert result.stdout == ""


def test_validate_missing_file(cli: Cli) -> None:
    result = cli("validate", "nope.yaml")
    assert result.exit_code == 2
    assert one_line_error(result.stderr) == "error: nope.yaml: no such file"


def test_markup_like_run_id_does_not_crash(cli: Cli) -> None:
    """A run id names a directory under runs/: `pr[/x]` would escape into a subfolder, so it is
    bad input (exit 2, one line, verbatim), and nothing is created."""
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "pr[/x]")
    assert result.exit_code == 2, result.output
    assert "bad run id 'pr[/x]'" in one_line_error(result.stderr)
    assert not (cli.cwd / ".reviewflow").exists()


@pytest.mark.parametrize("run_id", ["../escape", "/tmp/abs", ".hidden", "a b", ""])
def test_run_ids_that_could_escape_the_runs_folder_are_bad_input(cli: Cli, run_id: str) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", cli.db, "--run-id", run_id)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_markup_like_text_in_tables_is_shown_verbatim(cli: Cli) -> None:
    message = "bad [/x] and [bold]y[/bold]"
    write_workflow(
        cli.cwd / "wf.yaml",
        {
            "a": {
                "call": "cli_tasks:fail_with",
                "params": {"message": message},
                "retry": {"max_retries": 0},
            }
        },
    )
    result = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "mk", "--meta", "note=[/x]")
    assert result.exit_code == 1
    assert f"RuntimeError: {message}" in result.stdout
    for command in (["status", "mk"], ["events", "mk"]):
        shown = cli(*command, "--db", cli.db)
        assert shown.exit_code == 0
        assert message in shown.stdout
    assert "note=[/x]" in cli("status", "--db", cli.db).stdout


# -- garbage in, exit 0 or 2 out (never a traceback)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["5m", "250ms", "high", "${HOME}", "$$", "shell", "python", "a:b", "[/x]"])
)


def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


ANY_DATA = st.recursive(SCALARS, _containers, max_leaves=20)
TASK_FIELDS = [
    "type",
    "run",
    "call",
    "needs",
    "priority",
    "timeout",
    "retry",
    "env",
    "params",
    "delay",
    "not_before",
    "concurrency_key",
    "concurrency_limit",
    "kill_grace",
    "cwd",
    "timout",
]
TASK_NAMES = st.sampled_from(["a", "b", "c", "lint", "bad name"])
TASK_BODY = st.dictionaries(
    st.sampled_from(TASK_FIELDS), ANY_DATA | TASK_NAMES.map(lambda n: [n]), max_size=5
)
WORKFLOW_LIKE = st.fixed_dictionaries(
    {"name": st.sampled_from(["wf", "", 3, None]) | st.text(max_size=5)},
    optional={
        "tasks": st.dictionaries(TASK_NAMES, TASK_BODY, max_size=4) | ANY_DATA,
        "on_failure": st.dictionaries(TASK_NAMES, TASK_BODY, max_size=2),
        "defaults": st.dictionaries(
            st.sampled_from(["timeout", "priority", "retry", "env", "kill_grace", "x"]),
            ANY_DATA,
            max_size=3,
        ),
        "timeout": ANY_DATA,
        "max_concurrency": ANY_DATA,
        "failure_policy": st.sampled_from(["fail_fast", "continue", "panic"]),
        "concurrency_limits": ANY_DATA,
    },
)
GARBAGE_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def validate_text(cli: Cli, text: str) -> None:
    path = cli.cwd / "garbage.yaml"
    path.write_text(text, encoding="utf-8")
    result = cli("validate", "garbage.yaml")
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        one_line_error(result.stderr)
    else:
        assert "garbage.yaml: ok" in result.stdout


@GARBAGE_SETTINGS
@given(st.text(max_size=200))
def test_validate_garbage_text(cli: Cli, text: str) -> None:
    validate_text(cli, text)


@GARBAGE_SETTINGS
@given(ANY_DATA)
def test_validate_random_structures(cli: Cli, data: Any) -> None:
    validate_text(cli, yaml.safe_dump(data))


@GARBAGE_SETTINGS
@given(WORKFLOW_LIKE)
def test_validate_random_workflow_like_documents(cli: Cli, data: Any) -> None:
    validate_text(cli, yaml.safe_dump(data))


# ---------------------------------------------------------------------------- run and status


def test_run_success_and_status_json_shape(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "r1")
    assert result.exit_code == 0, result.output
    assert "run r1 (review, 3 tasks" in result.stdout
    assert "summary: succeeded" in result.stdout

    doc = status_json(cli, "r1")
    assert {"run_id", "state", "tasks", "metrics"} <= set(doc)
    assert (doc["run_id"], doc["state"], doc["workflow"]) == ("r1", "succeeded", "review")
    assert [t["name"] for t in doc["tasks"]] == ["lint", "tests", "summary"]
    for task in doc["tasks"]:
        assert set(task) >= TASK_KEYS, task
        assert task["state"] == "succeeded"
        assert task["attempts"] == 1
        assert task["error"] is None
        assert task["started_at"] <= task["finished_at"]
        assert task["duration_s"] == pytest.approx(
            task["finished_at"] - task["started_at"], abs=1e-5
        )
    lint = doc["tasks"][0]["result"]
    assert lint["exit_code"] == 0
    # The contract: .reviewflow/runs/<run_id>/<task>.<attempt>.log under the current
    # directory, even when --db puts the database elsewhere.
    assert Path(lint["log"]) == Path(".reviewflow") / "runs" / "r1" / "lint.1.log"
    assert (cli.cwd / lint["log"]).is_file()
    assert doc["tasks"][2]["result"] == {
        "task": "summary",
        "params": {},
        "meta": {},
        "inputs": ["lint", "tests"],
    }
    m = doc["metrics"]
    assert set(m) >= METRIC_KEYS
    assert m["tasks_by_state"] == {"succeeded": 3}
    assert (m["success_rate"], m["failure_rate"], m["retry_rate"]) == (1.0, 0.0, 0.0)
    assert set(m["wait_time_s"]) == {"mean", "max"}
    assert set(m["run_time_s"]) == {"mean", "max"}
    assert 0 <= m["wait_time_s"]["mean"] <= m["wait_time_s"]["max"]
    assert 0 < m["run_time_s"]["mean"] <= m["run_time_s"]["max"]
    assert m["duration_s"] > 0
    assert m["throughput_tasks_per_s"] == pytest.approx(3 / m["duration_s"], rel=0.01)
    assert sorted(recorded(cli.cwd / "done.txt")) == [("lint", 1), ("summary", 1), ("tests", 1)]

    text = cli("status", "r1", "--db", cli.db)
    assert text.exit_code == 0
    assert "r1 succeeded" in text.stdout


def test_failing_run_exits_1_and_reports_the_error(cli: Cli) -> None:
    write_workflow(
        cli.cwd / "wf.yaml",
        {
            "ok": sh("true"),
            "bad": sh("echo broken; exit 3", retry={"max_retries": 1, "base_delay": "10ms"}),
            "after": sh(record(), needs=["bad"]),
        },
        on_failure={"notify": sh(record("notified.txt"))},
    )
    result = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "f1")
    assert result.exit_code == 1, result.output
    doc = status_json(cli, "f1")
    assert doc["state"] == "failed"
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert tasks["bad"]["state"] == "failed"
    assert tasks["bad"]["attempts"] == 2
    assert "exit code 3" in tasks["bad"]["error"]
    assert [e["attempt"] for e in tasks["bad"]["errors"]] == [1, 2]
    assert tasks["after"]["state"] == "cancelled"
    assert tasks["notify"]["state"] == "succeeded"
    assert recorded(cli.cwd / "notified.txt") == [("notify", 1)]
    assert not (cli.cwd / "done.txt").exists()
    assert doc["metrics"]["retry_rate"] is not None and doc["metrics"]["retry_rate"] > 0
    assert "exit code 3" in doc["error"]
    # `status` reports; it does not fail because the run did
    assert cli("status", "f1", "--db", cli.db).exit_code == 0
    assert cli("resume", "f1", "--db", cli.db).exit_code == 1


def test_run_id_is_an_idempotency_key(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    first = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "pr-42")
    assert first.exit_code == 0, first.output
    second = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "pr-42")
    assert second.exit_code == 0, second.output
    assert "already exists (succeeded)" in second.stderr
    assert "pr-42 succeeded" in second.stdout
    assert query(cli.db, "SELECT run_id FROM runs") == [("pr-42",)]
    assert query(cli.db, "SELECT count(*) FROM tasks") == [(3,)]
    assert sorted(recorded(cli.cwd / "done.txt")) == [("lint", 1), ("summary", 1), ("tests", 1)]
    # --json on the second call: the stored run's document, nothing else on stdout
    third = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "pr-42", "--json")
    assert third.exit_code == 0
    assert json.loads(third.stdout)["run_id"] == "pr-42"
    assert len(recorded(cli.cwd / "done.txt")) == 3


def test_existing_failed_run_id_exits_1(cli: Cli) -> None:
    write_workflow(cli.cwd / "wf.yaml", {"bad": sh("exit 1", retry={"max_retries": 0})})
    assert cli("run", "wf.yaml", "--db", cli.db, "--run-id", "x").exit_code == 1
    again = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "x")
    assert again.exit_code == 1
    assert "already exists (failed)" in again.stderr


def test_meta_shows_in_status(cli: Cli) -> None:
    write_workflow(
        cli.cwd / "wf.yaml",
        {
            "a": {"type": "python", "call": "cli_tasks:record", "params": {"file": "a.txt"}},
        },
    )
    result = cli(
        "run",
        "wf.yaml",
        "--db",
        cli.db,
        "--run-id",
        "m",
        "--meta",
        "pr=42",
        "--meta",
        "branch=feature=x",
    )
    assert result.exit_code == 0, result.output
    doc = status_json(cli, "m")
    assert doc["meta"] == {"pr": "42", "branch": "feature=x"}
    assert doc["tasks"][0]["result"]["meta"] == {"pr": "42", "branch": "feature=x"}
    assert "pr=42" in cli("status", "m", "--db", cli.db).stdout
    listing = cli("status", "--db", cli.db, "--json")
    assert json.loads(listing.stdout)[0]["meta"] == {"pr": "42", "branch": "feature=x"}


def test_set_applies_to_run(cli: Cli) -> None:
    write_workflow(cli.cwd / "wf.yaml", {"a": sh("exit 9", retry={"max_retries": 0})})
    result = cli(
        "run",
        "wf.yaml",
        "--db",
        cli.db,
        "--run-id",
        "s",
        "--set",
        f"tasks.a.run=[sh, -c, '{record()}']",
        "--set",
        "tasks.b.run=[sh, -c, 'echo b > b.txt']",
        "--set",
        "tasks.b.needs=[a]",
    )
    assert result.exit_code == 0, result.output
    assert recorded(cli.cwd / "done.txt") == [("a", 1)]
    assert (cli.cwd / "b.txt").read_text() == "b\n"
    assert [t["name"] for t in status_json(cli, "s")["tasks"]] == ["a", "b"]
    bad = cli("run", "wf.yaml", "--db", cli.db, "--set", "tasks.a.run.x=1")
    assert bad.exit_code == 2
    assert "is not a mapping" in one_line_error(bad.stderr)


def test_run_json_prints_only_json(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "j", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert doc["run_id"] == "j"
    assert doc["state"] == "succeeded"
    assert set(doc["metrics"]) >= METRIC_KEYS
    status = cli("status", "j", "--db", cli.db, "--json")
    assert json.loads(status.stdout)["tasks"] == doc["tasks"]


def test_bad_input_to_run(cli: Cli) -> None:
    result = cli("run", "missing.yaml", "--db", cli.db)
    assert result.exit_code == 2
    assert one_line_error(result.stderr) == "error: missing.yaml: no such file"
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", cli.db, "--log-format", "xml")
    assert result.exit_code == 2
    assert "bad --log-format" in one_line_error(result.stderr)
    assert not cli.db.exists()


# ---------------------------------------------------------------------------- events, graph, lists


def test_events_lists_every_transition(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    assert cli("run", "wf.yaml", "--db", cli.db, "--run-id", "ev").exit_code == 0
    result = cli("events", "ev", "--db", cli.db, "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"id", "run_id", "task", "from", "to", "attempt", "at", "detail"} == set(rows[0])
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    run_path = [(r["from"], r["to"]) for r in rows if r["task"] is None and r["from"] != r["to"]]
    assert run_path == [(None, "pending"), ("pending", "running"), ("running", "succeeded")]
    for task in ("lint", "tests", "summary"):
        path = [(r["from"], r["to"]) for r in rows if r["task"] == task]
        assert path == [("blocked", "ready"), ("ready", "running"), ("running", "succeeded")]
    text = cli("events", "ev", "--db", cli.db)
    assert text.exit_code == 0
    assert text.stdout.count("succeeded") == 4
    assert "(run)" in text.stdout


def test_graph_of_a_file_and_of_a_run(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    chart = cli("graph", "wf.yaml")
    assert chart.exit_code == 0
    lines = chart.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert sum(1 for line in lines if '["' in line) == 3
    assert sum(1 for line in lines if "-->" in line) == 2
    assert ":::" not in chart.stdout

    assert cli("run", "wf.yaml", "--db", cli.db, "--run-id", "g").exit_code == 0
    coloured = cli("graph", "g", "--db", cli.db)
    assert coloured.exit_code == 0
    node_lines = [line for line in coloured.stdout.splitlines() if '["' in line]
    assert len(node_lines) == 3
    assert all(line.endswith(":::succeeded") for line in node_lines)
    assert "classDef succeeded" in coloured.stdout
    assert sum(1 for line in coloured.stdout.splitlines() if "-->" in line) == 2


def test_graph_of_a_bad_target(cli: Cli) -> None:
    result = cli("graph", "nope", "--db", cli.db)
    assert result.exit_code == 2
    one_line_error(result.stderr)
    review_workflow(cli.cwd / "wf.yaml")
    assert cli("run", "wf.yaml", "--db", cli.db, "--run-id", "g").exit_code == 0
    result = cli("graph", "nope", "--db", cli.db)
    assert result.exit_code == 2
    assert "neither a file nor a run id" in one_line_error(result.stderr)
    missing = cli("graph", "missing.yaml", "--db", cli.db)
    assert missing.exit_code == 2
    assert "no such file" in one_line_error(missing.stderr)


def test_status_without_id_lists_runs(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    for rid in ("one", "two"):
        assert cli("run", "wf.yaml", "--db", cli.db, "--run-id", rid).exit_code == 0
    listing = cli("status", "--db", cli.db, "--json")
    assert listing.exit_code == 0
    runs = json.loads(listing.stdout)
    assert [r["run_id"] for r in runs] == ["two", "one"]
    assert all(r["state"] == "succeeded" and r["workflow"] == "review" for r in runs)
    assert [
        r["run_id"]
        for r in json.loads(cli("status", "--db", cli.db, "--json", "--limit", "1").stdout)
    ] == ["two"]
    text = cli("status", "--db", cli.db)
    assert text.exit_code == 0
    assert "one" in text.stdout and "two" in text.stdout


def test_status_of_an_empty_database(cli: Cli) -> None:
    SQLiteStore(cli.db).close()
    result = cli("status", "--db", cli.db)
    assert result.exit_code == 0
    assert "no runs yet" in result.stdout
    assert json.loads(cli("status", "--db", cli.db, "--json").stdout) == []


def test_status_without_a_database(cli: Cli) -> None:
    result = cli("status", "--db", cli.db)
    assert result.exit_code == 2
    assert "no database" in one_line_error(result.stderr)
    assert not cli.db.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["status", "ghost"],
        ["status", "ghost", "--json"],
        ["events", "ghost"],
        ["resume", "ghost"],
        ["cancel", "ghost"],
        ["pause", "ghost"],
        ["graph", "ghost"],
    ],
)
def test_unknown_run_id_is_bad_input(cli: Cli, command: list[str]) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    assert cli("run", "wf.yaml", "--db", cli.db, "--run-id", "real").exit_code == 0
    result = cli(*command, "--db", cli.db)
    assert result.exit_code == 2, result.output
    assert "ghost" in one_line_error(result.stderr)
    assert result.stdout == ""


# ------------------------------------------------------------------ control of stored runs


def submit(cli: Cli, run_id: str) -> None:
    """Store a run without executing it (as if its process died before starting)."""
    store = SQLiteStore(cli.db)
    try:
        Engine(store).submit(load_workflow(cli.cwd / "wf.yaml"), run_id=run_id)
    finally:
        store.close()


def test_resume_executes_a_run_nobody_executes(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    submit(cli, "orphan")
    result = cli("resume", "orphan", "--db", cli.db)
    assert result.exit_code == 0, result.output
    assert "resuming orphan (review, was pending)" in result.stdout
    assert status_json(cli, "orphan")["state"] == "succeeded"
    assert len(recorded(cli.cwd / "done.txt")) == 3
    again = cli("resume", "orphan", "--db", cli.db, "--json")
    assert again.exit_code == 0
    assert "already ended: succeeded" in again.stderr
    assert json.loads(again.stdout)["state"] == "succeeded"
    assert len(recorded(cli.cwd / "done.txt")) == 3


def test_cancel_a_run_nobody_executes(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    submit(cli, "c")
    result = cli("cancel", "c", "--db", cli.db)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "c: cancelled"
    doc = status_json(cli, "c")
    assert doc["state"] == "cancelled"
    assert {t["state"] for t in doc["tasks"]} == {"cancelled"}
    assert not (cli.cwd / "done.txt").exists()
    again = cli("cancel", "c", "--db", cli.db)
    assert again.exit_code == 1
    assert "already ended: cancelled" in one_line_error(again.stderr)


def test_cancel_keeps_logs_off_stdout(cli: Cli) -> None:
    """Logs go to stderr (README); `cancel` of an orphaned run must not print them on stdout."""
    review_workflow(cli.cwd / "wf.yaml")
    submit(cli, "c2")
    result = cli("cancel", "c2", "--db", cli.db)
    assert result.exit_code == 0
    assert "run.start" not in result.stdout
    assert "transition" not in result.stdout


def test_pause_a_run_nobody_executes(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    submit(cli, "p")
    result = cli("pause", "p", "--db", cli.db)
    assert result.exit_code == 1
    assert "not being executed" in one_line_error(result.stderr)


# ---------------------------------------------------------------------------- the console script


def test_console_script_validate_and_run(procs: Procs, tmp_path: Path) -> None:
    review_workflow(tmp_path / "wf.yaml")
    ok = procs.run("validate", "wf.yaml")
    assert ok.returncode == 0
    assert ok.stdout.strip() == "wf.yaml: ok (review: 3 tasks)"
    (tmp_path / "bad.yaml").write_text(
        textwrap.dedent("""\
        name: wf
        tasks:
          a: {run: [x], needs: [b]}
          b: {run: [x], needs: [a]}
        """)
    )
    bad = procs.run("validate", "bad.yaml")
    assert bad.returncode == 2
    assert one_line_error(bad.stderr) == (
        "error: bad.yaml:3: task 'a': field 'needs': cycle: a -> b -> a"
    )
    run = procs.run("run", "wf.yaml", "--db", "rf.db", "--run-id", "cs", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["state"] == "succeeded"
    status = procs.run("status", "cs", "--db", "rf.db", "--json")
    assert json.loads(status.stdout)["tasks"] == json.loads(run.stdout)["tasks"]
    assert procs.run("status", "ghost", "--db", "rf.db").returncode == 2
    # --db moves the database: only the attempt logs are under .reviewflow/
    assert not (tmp_path / ".reviewflow" / "reviewflow.db").exists()
    assert (tmp_path / ".reviewflow" / "runs" / "cs").is_dir()
