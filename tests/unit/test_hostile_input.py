"""Hostile input stays bounded: tiny files that expand, endless files, deep nesting and values that
used to crash `run` are refused on one line (exit 2 / 422) before work proportional to them.

The corpus in tests/data/hostile/ is what an attacker (or an unlucky generator) would send. The
CLI tests run the real console script under an address-space limit, so a loader that expands an
alias bomb fails with MemoryError instead of taking the machine down.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from reviewflow.cluster.queue import Cluster
from reviewflow.cluster.worker import Worker
from reviewflow.config import (
    load_workflow,
    validate_spec,
)
from reviewflow.engine import CANNOT_START, Engine
from reviewflow.errors import SpecError
from reviewflow.limits import LIMITS
from reviewflow.server.http import ApiError
from reviewflow.server.submit import from_mapping, from_yaml
from reviewflow.spec import WorkflowSpec
from reviewflow.states import RUN_TERMINAL, RunState
from reviewflow.store import MemoryStore, SQLiteStore
from reviewflow.store.base import RunRecord
from reviewflow.store.postgres import PostgresStore

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"
RF = Path(sys.executable).parent / "reviewflow"
MEMORY_CAP = 2 * 1024**3
"""Address space of the CLI processes under test: far more than any bounded load needs."""


def capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real `reviewflow` command, memory-capped; the timeout only stops a hang."""
    return subprocess.run(
        [str(RF), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=capped,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


# ------------------------------------------------------------------------------ aliases


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("laughs.yaml", "aliases"),
        ("merge_laughs.yaml", "aliases"),
        ("string_laughs.yaml", "aliases"),
        ("recursive_alias.yaml", "recursive"),
        ("deep_nesting.yaml", "nested deeper than"),
    ],
)
def test_the_corpus_is_refused_on_one_line_by_validate_and_run(
    tmp_path: Path, name: str, message: str
) -> None:
    path = CORPUS / name
    for args in (["validate", str(path)], ["run", "--db", str(tmp_path / "rf.db"), str(path)]):
        line = one_line_error(cli(*args, cwd=tmp_path))
        assert f"{path}: line " in line and message in line, line
    assert not (tmp_path / "rf.db").exists() or "laughs" not in (tmp_path / "rf.db").read_bytes()


@pytest.mark.parametrize("name", ["laughs.yaml", "merge_laughs.yaml", "recursive_alias.yaml"])
def test_post_runs_refuses_the_corpus_with_422(name: str) -> None:
    with pytest.raises(ApiError) as info:
        from_yaml((CORPUS / name).read_bytes())
    assert info.value.status_code == 422


# ------------------------------------------------------------------------------ size


def test_validate_dev_zero_fails_fast_on_one_line(tmp_path: Path) -> None:
    line = one_line_error(cli("validate", "/dev/zero", cwd=tmp_path))
    assert "/dev/zero" in line and "--max-file-bytes" in line


def test_max_file_bytes_is_a_validate_and_run_option(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("name: w\ntasks:\n  t: {run: [echo, hi]}\n")
    size = path.stat().st_size
    for command in (["validate"], ["run", "--db", str(tmp_path / "rf.db")]):
        proc = cli(*command, "--max-file-bytes", str(size - 1), str(path), cwd=tmp_path)
        line = one_line_error(proc)
        assert f"larger than {size - 1} bytes" in line and "--max-file-bytes" in line
        assert "pass a bigger --max-file-bytes" in line  # what to do about it
    ok = cli("validate", "--max-file-bytes", str(size), str(path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_load_workflow_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: w\ntasks:\n  t: {run: [echo]}\n" + "#" * 1000 + "\n")
    with pytest.raises(SpecError, match="larger than 100 bytes"):
        load_workflow(path, max_file_bytes=100)
    assert load_workflow(path, max_file_bytes=2000).name == "w"


# ------------------------------------------------------------------------------ nesting


def test_a_set_key_of_5000_levels_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("name: w\ntasks:\n  t: {run: [echo]}\n")
    key = "tasks.t.params." + ".".join(["a"] * 5000)
    for command in (["validate"], ["run", "--db", str(tmp_path / "rf.db")]):
        line = one_line_error(cli(*command, str(path), "--set", f"{key}=1", cwd=tmp_path))
        assert "--set" in line and "levels" in line, line


def test_json_nested_too_deep_is_a_422() -> None:
    deep: Any = functools.reduce(lambda inner, _: [inner], range(500), [])
    with pytest.raises(ApiError) as info:
        from_mapping({"name": "w", "tasks": {"t": {"run": ["echo"], "params": {"x": deep}}}})
    assert info.value.status_code == 422
    assert "nested deeper than" in str(info.value.detail)


# ------------------------------------------------------------------------------ values


EXIT_CODE_1 = "retry.retry_on_exit_codes.1"


def task_error(body: dict[str, Any], **fields: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        validate_spec({"name": "w", **fields, "tasks": {"t": body}})
    return info.value


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"run": ["x"], "not_before": "0001-01-01T00:00:00"}, "not_before", "1970"),
        ({"run": ["x"], "not_before": "9999-12-31T23:59:59+00:00"}, "not_before", "9999"),
        ({"run": ["x"], "priority": 10**400}, "priority", "1,000,000"),
        ({"run": ["x"], "priority": -(10**6) - 1}, "priority", "1,000,000"),
        ({"run": ["x"], "priority": "1" + "0" * 5000}, "priority", "bad priority"),
        ({"run": ["x"], "description": "\ud800"}, "description", "lone surrogate"),
        ({"run": ["echo", "\ud800"]}, "run.1", "lone surrogate"),
        ({"run": ["x"], "env": {"A": "\udcff"}}, "env.A", "lone surrogate"),
        ({"call": "m:f", "params": {"a": ["\ud800"]}}, "params.a.0", "lone surrogate"),
        ({"call": "m:f", "params": {"\ud800": 1}}, "params.\\ud800", "lone surrogate"),
        ({"run": ["echo", "a\x00b"]}, "run.1", "NUL"),
        ({"run": ["x"], "cwd": "a\x00b"}, "cwd", "NUL"),
        ({"run": ["x"], "env": {"A": "a\x00b"}}, "env.A", "NUL"),
        ({"run": ["x"], "env": {"A=B": "x"}}, "env", "'='"),
        ({"run": ["x"], "env": {"": "x"}}, "env", "empty"),
        (
            {"run": ["x"], "description": "x" * (LIMITS.max_string_chars + 1)},
            "description",
            "at most",
        ),
        (
            {"run": ["x"], "concurrency_key": "k", "concurrency_limit": 10**30},
            "concurrency_limit",
            "",
        ),
        ({"run": ["x"], "retry": {"max_retries": 10**30}}, "retry.max_retries", ""),
        (
            {"run": ["x"], "retry": {"retry_on_exit_codes": [256]}},
            "retry.retry_on_exit_codes.0",
            "",
        ),
        ({"run": ["x"], "retry": {"multiplier": 1e308}}, "retry.multiplier", ""),
        ({"run": ["x"], "retry": {"multiplier": float("nan")}}, "retry.multiplier", ""),
    ],
)
def test_values_run_could_not_execute_are_refused_naming_the_field(
    body: dict[str, Any], field: str, message: str
) -> None:
    error = task_error(body)
    assert (error.task, error.field) == ("t", field), str(error)
    assert message in error.message, str(error)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_concurrency": 10**30}, "max_concurrency"),
        ({"concurrency_limits": {"k": 10**7}}, "concurrency_limits.k"),
        ({"not_before": "0001-01-01"}, "not_before"),
        ({"defaults": {"env": {"A=B": "1"}}}, "defaults.env"),
        ({"defaults": {"priority": 10**7}}, "defaults.priority"),
        ({"description": "\x00"}, "description"),
    ],
)
def test_run_level_values_are_bounded_too(fields: dict[str, Any], field: str) -> None:
    error = task_error({"run": ["x"]}, **fields)
    assert error.task is None and error.field == field, str(error)


def test_naive_times_are_utc() -> None:
    spec = validate_spec(
        {
            "name": "w",
            "tasks": {
                "a": {"run": ["x"], "not_before": "2026-12-01T08:00:00"},
                "b": {"run": ["x"], "not_before": datetime(2026, 12, 1, 8)},
                "c": {"run": ["x"], "not_before": date(2026, 12, 1)},
                "d": {"run": ["x"], "not_before": "2026-12-01T09:00:00+01:00"},
            },
        }
    )
    expected = datetime(2026, 12, 1, 8, tzinfo=UTC).timestamp()
    times = {name: task.not_before for name, task in spec.tasks.items()}
    assert all(isinstance(t, datetime) and t.tzinfo is not None for t in times.values())
    assert [times[n].timestamp() for n in "abd"] == [expected] * 3  # type: ignore[union-attr]
    assert times["c"] == datetime(2026, 12, 1, tzinfo=UTC)


def test_the_bounds_themselves_are_accepted() -> None:
    spec = validate_spec(
        {
            "name": "w",
            "max_concurrency": LIMITS.max_count,
            "tasks": {
                "hi": {"run": ["x"], "priority": LIMITS.max_priority},
                "lo": {"run": ["x"], "priority": -LIMITS.max_priority, "env": {"A_1": "é"}},
                "old": {"run": ["x"], "not_before": "1970-01-01T00:00:00Z"},
                "late": {"run": ["x"], "not_before": "9998-12-31T23:59:59Z"},
                "codes": {"run": ["x"], "retry": {"retry_on_exit_codes": [-255, 255]}},
            },
        }
    )
    assert spec.tasks["hi"].priority == 10**6 and spec.tasks["lo"].priority == -(10**6)


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_a_spec_at_the_bounds_runs_to_the_end(tmp_path: Path, store_kind: str) -> None:
    spec = validate_spec(
        {
            "name": "w",
            "max_concurrency": LIMITS.max_count,
            "concurrency_limits": {"k": LIMITS.max_count},
            "tasks": {
                "hi": {"run": ["true"], "priority": LIMITS.max_priority, "concurrency_key": "k"},
                "lo": {
                    "run": ["sh", "-c", 'test "$A" = é'],
                    "priority": -LIMITS.max_priority,
                    "env": {"A": "é"},
                    "description": "😀" * 100,
                    "needs": ["hi"],
                },
                "old": {"run": ["true"], "not_before": "1970-01-01T00:00:00"},
                "params": {
                    "type": "python",
                    "call": "os:getcwd",
                    "params": {"deep": functools.reduce(lambda x, _: [x], range(50), [])},
                    "retry": {"max_retries": 0, "retry_on_exit_codes": [255]},
                },
            },
        }
    )
    store = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "rf.db")
    try:
        engine = Engine(store, runs_dir=tmp_path / "runs", flush_interval=0.01)
        run_id, _ = engine.submit(spec)
        state = asyncio.run(asyncio.wait_for(engine.execute(run_id), 60))
        assert state is RunState.SUCCEEDED, store.get_tasks(run_id)
    finally:
        store.close()


def test_run_refuses_a_year_one_date_on_one_line_and_starts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text('name: w\ntasks:\n  t: {run: [true], not_before: "0001-01-01T00:00:00"}\n')
    line = one_line_error(cli("run", "--db", str(tmp_path / "rf.db"), str(path), cwd=tmp_path))
    assert line.startswith(f"error: {path}:3: task 't': field 'not_before': "), line


# ------------------------------------------------------------------------------ one rule

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udcff",
        "A=B",
        "=",
        "é",
        "😀",
        "${X}",
        "$$",
        "\\",
        "-",
        "--help",
        "\n",
        "x" * (LIMITS.max_string_chars + 1),
    ]
)
PLAIN_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00="), max_size=8)
TEXT = st.one_of(*[PLAIN_TEXT] * 5, HOSTILE_TEXT)
"""Mostly text every layer can hold, so that most workflows are accepted and do run."""
NUMBER = st.one_of(
    *[st.integers(-5, 5)] * 4,
    st.integers(-(10**7), 10**7),
    st.sampled_from([10**400, -(10**400), 2**63, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
TIME = st.one_of(
    st.sampled_from(["0001-01-01T00:00:00", "1969-12-31T23:59:59", "1970-01-01", "2000-01-01"]),
    st.datetimes(max_value=datetime(2020, 1, 1)),
    st.datetimes(max_value=datetime(2020, 1, 1), timezones=st.just(UTC)),
    st.dates(max_value=date(2020, 1, 1)),
    st.sampled_from(["0s", "1ms", 0, 0.01, -1, "x"]),
)
SHORT_DURATION = st.sampled_from([0, "0s", "1ms", 0.005, "10ms", -1, "1y", float("nan")])


def params() -> st.SearchStrategy[Any]:
    """JSON-like data, sometimes nested past the depth bound."""
    nested = st.recursive(
        SCALAR,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)
        ),
        max_leaves=8,
    )
    deep = st.integers(60, 70).map(
        lambda n: functools.reduce(lambda inner, _: {"x": inner}, range(n), {})
    )
    return st.dictionaries(TEXT, st.one_of(nested, deep), max_size=3)


@st.composite
def task_bodies(draw: st.DrawFn, earlier: list[str]) -> dict[str, Any]:
    body: dict[str, Any]
    if draw(st.booleans()):
        argv = draw(st.sampled_from([["true"], ["false"], ["sh", "-c", "exit 3"], ["echo"]]))
        body = {"type": "shell", "run": argv + draw(st.lists(TEXT, max_size=2))}
    else:
        fn = draw(st.sampled_from(["noop", "anoop", "fail_now", "context_echo", "failures_echo"]))
        body = {"type": "python", "call": f"tasks_for_tests:{fn}"}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "priority": st.one_of(st.sampled_from(["high", "low", "medium", "x"]), NUMBER),
        "not_before": TIME,
        "delay": SHORT_DURATION,
        "timeout": st.sampled_from([None, 0, "5s", 30, "1ms"]),
        "env": st.dictionaries(TEXT, st.one_of(TEXT, NUMBER, st.booleans()), max_size=2),
        "params": params(),
        "description": TEXT,
        "cwd": st.sampled_from([".", "\x00", "no-such-dir", "\ud800"]),
        "retry": st.fixed_dictionaries(
            {"base_delay": st.sampled_from([0, "1ms"])},
            optional={
                "max_retries": st.one_of(st.integers(0, 2), st.just(10**30)),
                "multiplier": st.one_of(st.floats(1, 3), st.just(1e308), st.just(float("nan"))),
                "retry_on_exit_codes": st.lists(st.integers(-300, 300), max_size=2),
                "jitter": st.booleans(),
            },
        ),
        "concurrency_key": TEXT,
        "concurrency_limit": st.one_of(st.integers(-1, 3), st.just(10**30)),
        "trigger": st.sampled_from(["all_succeeded", "all_done"]),
        "needs": st.lists(st.sampled_from(earlier), max_size=3, unique=True)
        if earlier
        else st.just([]),
    }
    for field in draw(st.sets(st.sampled_from(sorted(optional)), max_size=5)):
        body[field] = draw(optional[field])
    return body


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(
            st.sampled_from(["a", "b", "c.d", "e-f_1", "x" * 200, "T9"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    tasks = {name: draw(task_bodies(names[:i])) for i, name in enumerate(names)}
    data: dict[str, Any] = {"name": "w", "tasks": tasks}
    run_fields: dict[str, st.SearchStrategy[Any]] = {
        "max_concurrency": st.one_of(st.integers(0, 4), st.just(10**30)),
        "failure_policy": st.sampled_from(["fail_fast", "continue"]),
        "not_before": TIME,
        "timeout": st.sampled_from([None, "30s"]),
        "description": TEXT,
        "concurrency_limits": st.dictionaries(TEXT, st.integers(0, 10**7), max_size=2),
        "defaults": st.fixed_dictionaries(
            {},
            optional={
                "priority": NUMBER,
                "env": st.dictionaries(TEXT, TEXT, max_size=2),
                "timeout": st.sampled_from(["5s", 0]),
            },
        ),
        "on_failure": st.just({"hook": {"type": "python", "call": "tasks_for_tests:noop"}}),
    }
    for field in draw(st.sets(st.sampled_from(sorted(run_fields)), max_size=4)):
        data[field] = draw(run_fields[field])
    return data


DEEP = {"x": functools.reduce(lambda inner, _: [inner], range(2000), [])}


@pytest.mark.slow  # ~20 s of real runs: in CI, not in the review's quick unit run
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=workflows())
@example(data={"name": "w", "tasks": {"a": {"run": ["true"], "not_before": "0001-01-01T00:00"}}})
@example(data={"name": "w", "tasks": {"a": {"run": ["true"], "priority": 10**400}}})
@example(data={"name": "w", "tasks": {"a": {"run": ["echo", "\ud800"], "description": "\udcff"}}})
@example(data={"name": "w", "tasks": {"a": {"run": ["true"], "env": {"A=B": "\x00"}}}})
@example(data={"name": "w", "tasks": {"a": {"call": "tasks_for_tests:noop", "params": DEEP}}})
def test_whatever_validate_accepts_runs_to_the_end_and_resumes(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]
) -> None:
    """One rule: a spec `validate` accepts is one `run` (and `resume`, from the stored spec in
    another store handle) executes to a terminal state; a spec it refuses gets one printable
    line naming where."""
    try:
        spec = validate_spec(data)
    except SpecError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 2000
        message.encode("utf-8")  # printable: no lone surrogate in the message itself
        event("refused")
        return
    event("accepted")
    tmp = tmp_path_factory.mktemp("run")
    memory = MemoryStore()
    sqlite = SQLiteStore(tmp / "rf.db")
    try:
        for store, reopen in (
            (memory, lambda: memory),
            (sqlite, lambda: SQLiteStore(tmp / "rf.db")),
        ):
            run_id, _ = Engine(store, runs_dir=tmp / "runs").submit(spec)
            other = reopen()  # `resume` in another process: the spec comes back from the store
            engine = Engine(other, runs_dir=tmp / "runs", flush_interval=0.01)
            state = asyncio.run(asyncio.wait_for(engine.execute(run_id), 120))
            assert state in RUN_TERMINAL, state
            record = store.get_run(run_id)
            assert record is not None and RunState(record.state) in RUN_TERMINAL
            # Not a run the engine had to give up on: the spec itself is executable.
            assert not (record.error or "").startswith(CANNOT_START), record.error
            if other is not store:
                other.close()
    finally:
        sqlite.close()


def _join_listeners(within: float = 2.0) -> None:
    """A stopped worker's LISTEN thread ends within its 0.5 s poll: none outlives its database."""
    deadline = time.monotonic() + within
    for thread in threading.enumerate():
        if thread.name == "reviewflow-listen":
            thread.join(max(deadline - time.monotonic(), 0.0))


async def _workers_run(url: str, spec: WorkflowSpec, runs_dir: Path) -> RunRecord:
    """Submit `spec` for the workers and run one Worker until the run ends."""
    store = PostgresStore(url)
    worker_store = PostgresStore(url)
    worker = Worker(
        worker_store, name="w", lease_ttl=1.0, poll_interval=0.05, grace=0.1, runs_dir=runs_dir
    )
    loop = asyncio.create_task(worker.run())
    try:
        run_id, _ = Cluster(store).submit(spec)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            record = store.get_run(run_id)
            assert record is not None
            if RunState(record.state) in RUN_TERMINAL:
                return record
            await asyncio.sleep(0.05)
        raise AssertionError(f"the workers did not end run {run_id}: {store.get_tasks(run_id)}")
    finally:
        worker.drain()
        worker.drain()  # a second call hands back at once
        await asyncio.wait_for(loop, 30)
        worker_store.close()
        store.close()
        await asyncio.to_thread(_join_listeners)


@pytest.mark.slow  # real PostgreSQL servers and workers: in CI, not in the review's quick run
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=workflows())
@example(data={"name": "w", "tasks": {"a": {"run": ["echo", "é\x00"]}}})
@example(data={"name": "w", "max_concurrency": 10**7, "tasks": {"a": {"run": ["true"]}}})
def test_whatever_validate_accepts_runs_on_postgresql_embedded_and_with_workers(
    pg_server: Any, tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]
) -> None:
    try:
        spec = validate_spec(data)
    except SpecError:
        return
    tmp = tmp_path_factory.mktemp("pg")
    url = pg_server.new_database()
    store = PostgresStore(url)
    try:
        run_id, _ = Engine(store, runs_dir=tmp / "runs").submit(spec)
        engine = Engine(store, runs_dir=tmp / "runs", flush_interval=0.01)
        assert asyncio.run(asyncio.wait_for(engine.execute(run_id), 120)) in RUN_TERMINAL
        record = store.get_run(run_id)
        assert record is not None and not (record.error or "").startswith(CANNOT_START)
        record = asyncio.run(_workers_run(url, spec, tmp / "runs"))
        assert not (record.error or "").startswith(CANNOT_START), record.error
    finally:
        store.close()
        pg_server.drop_database(url)


def test_a_stored_spec_is_not_walked_again_when_it_is_read_back() -> None:
    """JSON text is what a store holds, checked at submit; reading it back (every run start,
    status view and worker) skips the walk, so a run stored by an older version still loads."""
    stored = '{"name": "w", "tasks": {"a": {"name": "a", "type": "shell", "run": ["a\\u0000"]}}}'
    assert WorkflowSpec.model_validate_json(stored).tasks["a"].run == ["a\x00"]
    with pytest.raises(SpecError, match="NUL"):
        validate_spec(json.loads(stored))
