"""YAML workflow files (reviewflow.config): safe loading, duplicate keys, `${VAR}` interpolation,
`--set` overrides, and errors that name the file and the line of the task at fault."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from reviewflow.config import apply_overrides, interpolate, load_workflow, load_workflow_text
from reviewflow.errors import SpecError


def load(text: str, **kwargs: Any) -> Any:
    kwargs.setdefault("env", {})
    return load_workflow_text(textwrap.dedent(text), file="wf.yaml", **kwargs)


def load_error(text: str, **kwargs: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(text, **kwargs)
    return info.value


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
    spec = load(BASIC)
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
    assert load_workflow(path, env={}) == load(BASIC)


# ---------------------------------------------------------------------------- interpolation


def test_env_vars_are_interpolated() -> None:
    spec = load(
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
    assert load(text, env={}).tasks["a"].run == ["echo", "fallback"]
    assert load(text, env={"X": ""}).tasks["a"].run == ["echo", ""]
    assert load(text, env={"X": "set"}).tasks["a"].run == ["echo", "set"]


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
    spec = load(BASIC, overrides=["tasks.tests.timeout=5m", "tasks.lint.priority=low"])
    assert spec.tasks["tests"].timeout == 300.0
    assert spec.tasks["lint"].priority == 1


def test_set_values_are_parsed_as_yaml() -> None:
    spec = load(
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
    spec = load(
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


def test_duplicate_field_is_an_error() -> None:
    exc = load_error("name: wf\ntasks:\n  a: {run: [x], run: [y]}\n")
    assert "duplicate key 'run'" in str(exc)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("- a\n- b\n", "must be a mapping"),
        ("just a string", "must be a mapping"),
        ("name: [unclosed\n", "line"),
        ("a: b: c\n", "line 1"),
        ("key: !!python/object:os.system ls\n", "line 1"),
        ("tasks: &t {a: *t}\n", "recursive"),
        ("? [a, b]\n: 1\n", "unhashable"),
    ],
)
def test_bad_yaml_is_a_one_line_spec_error(text: str, fragment: str) -> None:
    exc = load_error(text)
    assert fragment in str(exc)
    assert str(exc).startswith("wf.yaml")
    assert "\n" not in str(exc)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"name: wf\ntasks:\n  a: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError):
        load(text)
    assert not marker.exists()


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
    block = load(BASIC)
    flow_doc = yaml.safe_load(textwrap.dedent(BASIC))
    flow = load_workflow_text(yaml.safe_dump(flow_doc, default_flow_style=True), env={})
    assert block == flow


def test_yaml_11_booleans_stay_text_so_argv_is_what_was_written(tmp_path):
    """`run: [echo, yes, on, true]` must run `echo yes on true`, not `echo True True True`."""
    path = tmp_path / "wf.yaml"
    path.write_text("name: w\ntasks:\n  a: {run: [echo, yes, on, off, no, true, 3, 1.5]}\n")
    spec = load_workflow(path)
    assert spec.tasks["a"].run == ["echo", "yes", "on", "off", "no", "true", "3", "1.5"]


def test_true_false_are_still_booleans(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("name: w\ntasks:\n  a: {run: [x], retry: {jitter: false}}\n")
    assert load_workflow(path).tasks["a"].retry.jitter is False


def test_a_yaml_date_is_a_not_before_at_midnight(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("name: w\ntasks:\n  a: {run: [x], not_before: 2026-12-01}\n")
    nb = load_workflow(path).tasks["a"].not_before
    assert (nb.year, nb.month, nb.day, nb.hour) == (2026, 12, 1, 0)


# ---------------------------------------------------------------------------- the C loader


def test_libyaml_parses_when_pyyaml_has_it() -> None:
    """The pure-Python parser took 6-18 s for a 10k-task file; libyaml's takes a fraction."""
    from reviewflow import yamlsafe

    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    assert issubclass(yamlsafe._Loader, yaml.CSafeLoader)


def test_errors_of_a_large_file_still_name_the_line() -> None:
    lines = ["name: big", "tasks:", "  t1: {run: [echo]}"]
    lines += [f"  t{i}: {{run: [echo], needs: [t{i - 1}]}}" for i in range(2, 3000)]
    lines[1500] = "  t1499: {run: [echo], timout: 5s}"
    exc = load_error("\n".join(lines) + "\n")
    assert str(exc).startswith("wf.yaml:1501: task 't1499': field 'timout': unknown field"), exc
    lines[1500] = "  t1499: {run: [echo], needs: [t1498], retry: {max_retries: [}"
    exc = load_error("\n".join(lines) + "\n")
    assert str(exc).startswith("wf.yaml: line 1501, column "), exc


def test_a_cycle_in_a_long_chain_is_named() -> None:
    lines = ["name: big", "tasks:", "  t0: {run: [echo], needs: [t2999]}"]
    lines += [f"  t{i}: {{run: [echo], needs: [t{i - 1}]}}" for i in range(1, 3000)]
    exc = load_error("\n".join(lines) + "\n")
    assert exc.message.startswith("cycle: ") and exc.message.count(" -> ") == 3000


def test_the_garbage_collector_is_back_on_after_a_load() -> None:
    import gc

    assert gc.isenabled()
    load(BASIC)
    load_error("name: w\ntasks: {a: {run: [x], timout: 1}}\n")
    assert gc.isenabled()


@pytest.mark.parametrize(
    "value", ["!!binary aGVsbG8=", "!!python/object:os.system x", "!!set {a, b}", "!custom x"]
)
def test_only_plain_data_tags_are_read(value: str) -> None:
    exc = load_error(f"name: w\ntasks:\n  a: {{run: [x], params: {{v: {value}}}}}\n")
    assert "line 3" in str(exc)


def test_an_equals_sign_is_plain_text() -> None:
    spec = load("name: w\ntasks:\n  a: {run: [test, a, =, a], params: {=: 1}}\n")
    assert spec.tasks["a"].run == ["test", "a", "=", "a"]
    assert spec.tasks["a"].params == {"=": 1}


def test_a_set_value_of_invalid_yaml_is_text() -> None:
    assert apply_overrides({}, ["a=[unclosed", "b=x: y: z"]) == {"a": "[unclosed", "b": "x: y: z"}


def test_a_set_on_a_shared_alias_changes_only_its_task() -> None:
    text = """\
        name: w
        tasks:
          a: {run: [x], env: &base {FOO: "1"}}
          b: {run: [x], env: *base}
        """
    spec = load(text, overrides=["tasks.a.env.FOO=2"])
    assert spec.tasks["a"].env == {"FOO": "2"} and spec.tasks["b"].env == {"FOO": "1"}


def test_an_error_about_a_task_names_its_line_from_the_one_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The text of a 20,000-task body was composed three times to report one bad dependency
    (the line, then the section): an error now costs what a success does."""
    from reviewflow import yamlsafe
    from reviewflow.server.http import ApiError
    from reviewflow.server.submit import from_yaml

    composed = []
    compose = yamlsafe._Loader.get_single_node

    def counting(self: Any) -> Any:
        composed.append(1)
        return compose(self)

    monkeypatch.setattr(yamlsafe._Loader, "get_single_node", counting)
    text = "name: w\ntasks:\n  a: {run: [x]}\non_failure:\n  h: {run: [x], needs: [nope]}\n"
    exc = load_error(text)
    assert str(exc).startswith("wf.yaml:5: task 'h': field 'needs': unknown dependency")
    assert len(composed) == 1
    with pytest.raises(ApiError) as raised:
        from_yaml(text.encode())
    assert raised.value.field == "on_failure.h.needs" and "<request body>:5:" in str(
        raised.value.detail
    )
    assert len(composed) == 2
