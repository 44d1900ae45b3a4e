"""YAML workflow files (reviewflow.config): `${VAR}` interpolation, `--set` overrides, and errors
that name the file and the line of the task at fault. The YAML itself (safe, bounded, YAML 1.2
booleans, duplicate keys): tests/unit/test_yamlsafe.py."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from reviewflow.config import apply_overrides, interpolate, load_workflow, load_workflow_text
from reviewflow.errors import SpecError
from rfhelpers import load_error, load_text

BASIC = """\
    name: review
    tasks:
      lint: {run: [ruff, check, .], priority: high}
      tests:
        run: pytest -q
        timeout: 10m
        needs: [lint]
    """


def test_a_basic_file_loads() -> None:
    spec = load_text(BASIC)
    assert spec.name == "review"
    assert list(spec.tasks) == ["lint", "tests"]
    assert spec.tasks["lint"].run == ["ruff", "check", "."]
    assert spec.tasks["lint"].priority == 3
    assert spec.tasks["tests"].run == ["pytest", "-q"]
    assert spec.tasks["tests"].timeout == 600.0
    assert spec.tasks["tests"].needs == ["lint"]


def test_load_workflow_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(BASIC))
    assert load_workflow(path, env={}) == load_text(BASIC)


# ---------------------------------------------------------------------------- interpolation


def test_env_vars_are_interpolated() -> None:
    spec = load_text(
        """\
        name: wf
        tasks:
          a:
            run: [echo, "${WHO}", "pr-${PR:-0}", "${EMPTY:-}", "cost $$5", "$${WHO}"]
            env: {TOKEN: "${TOKEN:-none}"}
            params: {n: "${N}", nested: [{deep: "${WHO}!"}]}
        """,
        env={"WHO": "me", "N": "3", "PR": "42"},
    )
    task = spec.tasks["a"]
    assert task.run == ["echo", "me", "pr-42", "", "cost $5", "${WHO}"]
    assert task.env == {"TOKEN": "none"}
    assert task.params == {"n": "3", "nested": [{"deep": "me!"}]}


def test_default_is_used_only_when_the_var_is_unset() -> None:
    text = "name: wf\ntasks:\n  a: {run: [echo, '${X:-fallback}']}\n"
    assert load_text(text, env={}).tasks["a"].run == ["echo", "fallback"]
    assert load_text(text, env={"X": ""}).tasks["a"].run == ["echo", ""]
    assert load_text(text, env={"X": "set"}).tasks["a"].run == ["echo", "set"]


def test_missing_env_var_is_an_error_naming_var_and_field() -> None:
    exc = load_error("name: wf\ntasks:\n  a: {run: [echo, '${NOT_SET_ANYWHERE}']}\n")
    assert "NOT_SET_ANYWHERE" in exc.message
    assert "not set" in exc.message
    assert exc.field is not None and exc.field.startswith("tasks.a.run")
    assert str(exc).startswith("wf.yaml")


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RF_TEST_WHO", "env-value")
    spec = load_workflow_text("name: wf\ntasks:\n  a: {run: [echo, '${RF_TEST_WHO}']}\n")
    assert spec.tasks["a"].run == ["echo", "env-value"]


def test_interpolate_leaves_non_strings_and_plain_dollars_alone() -> None:
    data = {"a": 1, "b": [True, None, 2.5], "c": "no vars", "d": "$HOME stays", "e": "${X}"}
    assert interpolate(data, {"X": "x"}) == {**data, "e": "x"}


# ---------------------------------------------------------------------------- --set overrides


def test_set_overrides_a_field() -> None:
    spec = load_text(BASIC, overrides=["tasks.tests.timeout=5m", "tasks.lint.priority=low"])
    assert spec.tasks["tests"].timeout == 300.0
    assert spec.tasks["lint"].priority == 1


def test_set_values_are_parsed_as_yaml() -> None:
    spec = load_text(
        BASIC,
        overrides=[
            "max_concurrency=3",
            "tasks.tests.run=[pytest, -x]",
            "tasks.tests.retry.max_retries=0",
            "failure_policy=continue",
        ],
    )
    assert spec.max_concurrency == 3
    assert spec.tasks["tests"].run == ["pytest", "-x"]
    assert spec.tasks["tests"].retry.max_retries == 0
    assert spec.failure_policy == "continue"


def test_set_creates_new_keys_and_mappings() -> None:
    spec = load_text(
        BASIC,
        overrides=[
            "tasks.docs.run=[mkdocs, build]",
            "tasks.docs.needs=[lint]",
            "timeout=1h",
            "tasks.lint.env.MODE=strict",
        ],
    )
    assert spec.tasks["docs"].run == ["mkdocs", "build"]
    assert spec.tasks["docs"].needs == ["lint"]
    assert spec.timeout == 3600.0
    assert spec.tasks["lint"].env == {"MODE": "strict"}


def test_set_through_a_non_mapping_is_an_error() -> None:
    exc = load_error(BASIC, overrides=["tasks.lint.run.x=1"])
    assert "tasks.lint.run is not a mapping" in str(exc)
    exc = load_error(BASIC, overrides=["name.sub=1"])
    assert "name is not a mapping" in str(exc)


@pytest.mark.parametrize("item", ["no-equals", "=value", " =x"])
def test_malformed_set_is_an_error(item: str) -> None:
    exc = load_error(BASIC, overrides=[item])
    assert "bad --set" in str(exc)


def test_set_result_is_validated() -> None:
    exc = load_error(BASIC, overrides=["tasks.tests.timeout=soon"])
    assert (exc.task, exc.field) == ("tests", "timeout")


def test_apply_overrides_on_plain_data() -> None:
    data: dict[str, Any] = {"a": {"b": 1}, "n": None}
    assert apply_overrides(data, ["a.c=[1, 2]", "n.x=y", "a.b=", "z={k: v}"]) == {
        "a": {"b": "", "c": [1, 2]},
        "n": {"x": "y"},
        "z": {"k": "v"},
    }


# ---------------------------------------------------------------------------- YAML problems


def test_duplicate_task_name_is_an_error() -> None:
    exc = load_error(
        """\
        name: wf
        tasks:
          lint: {run: [ruff]}
          lint: {run: [flake8]}
        """
    )
    assert "duplicate" in str(exc)
    assert "lint" in str(exc)
    assert "line 4" in str(exc)
    assert exc.file == "wf.yaml"


# ---------------------------------------------------------------------------- file and line


CYCLE = """\
    name: wf
    tasks:
      ok: {run: [x]}

      a:
        run: [x]
        needs: [b]
      b: {run: [x], needs: [a]}
    """


@pytest.mark.parametrize(
    ("text", "line", "task", "field"),
    [
        (
            "name: wf\ntasks:\n  ok: {run: [x]}\n  bad: {run: [x], timeout: 5x}\n",
            4,
            "bad",
            "timeout",
        ),
        (
            "name: wf\ntasks:\n  ok: {run: [x]}\n\n\n  typo:\n    run: [x]\n    prority: 3\n",
            6,
            "typo",
            "prority",
        ),
        ("name: wf\ntasks:\n  a: {type: python}\n", 3, "a", "call"),
        ("name: wf\ntasks:\n  a: {type: shell}\n", 3, "a", "run"),
        ("name: wf\ntasks:\n  a: {type: nope, run: [x]}\n", 3, "a", "type"),
        ("name: wf\ntasks:\n  a: {run: [x], needs: [ghost]}\n", 3, "a", "needs"),
        (
            "name: wf\ntasks:\n  a: {run: [x]}\non_failure:\n  n: {run: [x], retry: 3}\n",
            5,
            "n",
            "retry",
        ),
    ],
)
def test_task_errors_name_file_and_line(text: str, line: int, task: str, field: str) -> None:
    exc = load_error(text)
    assert str(exc).startswith(f"wf.yaml:{line}: task '{task}': field '{field}': "), str(exc)
    assert (exc.task, exc.field) == (task, field)


def test_cycle_error_names_the_line_of_a_task_in_the_cycle() -> None:
    exc = load_error(CYCLE)
    assert exc.message in ("cycle: a -> b -> a", "cycle: b -> a -> b")
    line = {"a": 5, "b": 8}[exc.task or ""]
    assert str(exc).startswith(f"wf.yaml:{line}: task '{exc.task}': field 'needs': cycle: ")


def test_run_level_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "flow.yml"
    path.write_text("name: wf\nmax_concurrency: 0\ntasks:\n  a: {run: [x]}\n")
    with pytest.raises(SpecError) as info:
        load_workflow(path, env={})
    assert str(info.value).startswith(f"{path}: field 'max_concurrency': ")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_workflow(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="cannot read"):
        load_workflow(binary)
    with pytest.raises(SpecError, match="cannot read"):
        load_workflow(tmp_path)


def test_same_spec_from_flow_and_block_yaml() -> None:
    block = load_text(BASIC)
    flow_doc = yaml.safe_load(textwrap.dedent(BASIC))
    flow = load_workflow_text(yaml.safe_dump(flow_doc, default_flow_style=True), env={})
    assert block == flow


# ---------------------------------------------------------------------------- long files


def test_a_cycle_in_a_long_chain_is_named() -> None:
    lines = ["name: big", "tasks:", "  t0: {run: [echo], needs: [t2999]}"]
    lines += [f"  t{i}: {{run: [echo], needs: [t{i - 1}]}}" for i in range(1, 3000)]
    exc = load_error("\n".join(lines) + "\n")
    assert exc.message.startswith("cycle: ") and exc.message.count(" -> ") == 3000


def test_a_set_value_of_invalid_yaml_is_text() -> None:
    assert apply_overrides({}, ["a=[unclosed", "b=x: y: z"]) == {"a": "[unclosed", "b": "x: y: z"}


def test_a_set_on_a_shared_alias_changes_only_its_task() -> None:
    text = """\
        name: w
        tasks:
          a: {run: [x], env: &base {FOO: "1"}}
          b: {run: [x], env: *base}
        """
    spec = load_text(text, overrides=["tasks.a.env.FOO=2"])
    assert spec.tasks["a"].env == {"FOO": "2"} and spec.tasks["b"].env == {"FOO": "1"}
