"""Hostile input stays bounded: tiny files that expand, endless files, deep nesting and values that
used to crash `run` are refused on one line (exit 2 / 422) before work proportional to them.

The corpus in tests/data/hostile/ is what an attacker (or an unlucky generator) would send. The
CLI tests run the real console script under an address-space limit, so a loader that expands an
alias bomb fails with MemoryError instead of taking the machine down.
"""

from __future__ import annotations

import functools
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reviewflow.config import apply_overrides, load_workflow, load_workflow_text, parse_yaml
from reviewflow.errors import SpecError
from reviewflow.limits import LIMITS
from reviewflow.server.http import ApiError
from reviewflow.server.submit import from_mapping, from_yaml
from reviewflow.spec import validate_spec

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
