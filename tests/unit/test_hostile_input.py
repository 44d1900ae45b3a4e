"""Hostile input stays bounded: tiny files that expand, endless files, deep nesting and values that
used to crash `run` are refused on one line (exit 2 / 422) before work proportional to them.

The corpus in tests/data/hostile/ is what an attacker (or an unlucky generator) would send. The
CLI tests run the real console script under an address-space limit, so a loader that expands an
alias bomb fails with MemoryError instead of taking the machine down.
"""

from __future__ import annotations

import asyncio
import functools
import os
import resource
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from reviewflow.config import apply_overrides, load_workflow, load_workflow_text, parse_yaml
from reviewflow.engine import Engine
from reviewflow.errors import SpecError
from reviewflow.limits import LIMITS
from reviewflow.server.http import ApiError
from reviewflow.server.submit import from_mapping, from_yaml
from reviewflow.spec import validate_spec
from reviewflow.states import RunState
from reviewflow.store import MemoryStore, SQLiteStore

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


def bomb(levels: int, width: int = 9) -> str:
    """A valid workflow whose params hold `width**levels` strings once aliases are expanded."""
    lines = ["name: w", "tasks:", "  t:", "    run: [echo]", "    params:"]
    lines.append("      l0: &l0 [" + ", ".join(["lol"] * width) + "]")
    for i in range(1, levels):
        lines.append(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ aliases


def test_aliases_expanding_past_the_bound_are_refused_with_the_line() -> None:
    # 9**6 = 531,441 strings: loads (slowly) without a bound, refused with one.
    with pytest.raises(SpecError, match="aliases") as info:
        load_workflow_text(bomb(6), file="wf.yaml", env={})
    assert str(info.value).startswith("wf.yaml: line ")


def test_aliases_within_the_bound_still_work() -> None:
    spec = load_workflow_text(bomb(3), file="wf.yaml", env={})  # 729 strings
    assert len(spec.tasks["t"].params["l2"]) == 9


def test_merge_keys_still_merge_and_a_key_may_override_a_merged_one() -> None:
    data = parse_yaml("base: &b {run: [echo], timeout: 5s}\nt: {<<: *b, timeout: 9s}\n")
    assert data["t"] == {"run": ["echo"], "timeout": "9s"}


def test_a_duplicate_key_is_still_an_error() -> None:
    with pytest.raises(SpecError, match="line 1, column 8: duplicate key 'a'"):
        parse_yaml("{a: 1, a: 2}")


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


def test_a_set_value_cannot_smuggle_an_alias_bomb() -> None:
    value = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x, x]"] + ["*a"] * 9) + "]"
    nested = "&b [" + ", ".join(["*a"] * 10) + "]"
    with pytest.raises(SpecError, match="aliases"):
        apply_overrides({}, [f"x=[{value}, {nested}, " + ", ".join(["*b"] * 2000) + "]"])


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
    ok = cli("validate", "--max-file-bytes", str(size), str(path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_load_workflow_reads_no_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: w\ntasks:\n  t: {run: [echo]}\n" + "#" * 1000 + "\n")
    with pytest.raises(SpecError, match="larger than 100 bytes"):
        load_workflow(path, max_file_bytes=100)
    assert load_workflow(path, max_file_bytes=2000).name == "w"


def test_the_default_file_limit_is_ten_mebibytes() -> None:
    assert LIMITS.max_file_bytes == 10 * 1024 * 1024


# ------------------------------------------------------------------------------ nesting


def test_a_set_key_of_5000_levels_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("name: w\ntasks:\n  t: {run: [echo]}\n")
    key = "tasks.t.params." + ".".join(["a"] * 5000)
    for command in (["validate"], ["run", "--db", str(tmp_path / "rf.db")]):
        line = one_line_error(cli(*command, str(path), "--set", f"{key}=1", cwd=tmp_path))
        assert "--set" in line and "levels" in line, line


def test_params_nested_too_deep_are_refused_naming_the_field() -> None:
    deep = functools.reduce(lambda inner, _: {"x": inner}, range(100), {})
    with pytest.raises(SpecError, match="nested deeper than") as info:
        validate_spec({"name": "w", "tasks": {"t": {"run": ["echo"], "params": deep}}})
    assert info.value.task == "t" and info.value.field.startswith("params.x.x")


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
