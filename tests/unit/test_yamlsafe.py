"""Safe, bounded YAML (reviewflow.yamlsafe), which every workflow file, template, `--set` value
and POST /runs body goes through: plain data only (no object tags, YAML 1.2 booleans), duplicate
keys refused, aliases counted while the data is built (an alias bomb fails at the node that passes
the bound), and every error on one line naming the line and column."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import yaml

from reviewflow import yamlsafe
from reviewflow.config import apply_overrides, load_workflow, load_workflow_text, parse_yaml
from reviewflow.errors import SpecError
from reviewflow.server.http import ApiError
from reviewflow.server.submit import from_yaml
from rfhelpers import load_error, load_text

# ------------------------------------------------------------------------------ plain data


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
        load_text(text)
    assert not marker.exists()


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


@pytest.mark.parametrize(
    "value", ["!!binary aGVsbG8=", "!!python/object:os.system x", "!!set {a, b}", "!custom x"]
)
def test_only_plain_data_tags_are_read(value: str) -> None:
    exc = load_error(f"name: w\ntasks:\n  a: {{run: [x], params: {{v: {value}}}}}\n")
    assert "line 3" in str(exc)


def test_an_equals_sign_is_plain_text() -> None:
    spec = load_text("name: w\ntasks:\n  a: {run: [test, a, =, a], params: {=: 1}}\n")
    assert spec.tasks["a"].run == ["test", "a", "=", "a"]
    assert spec.tasks["a"].params == {"=": 1}


# ------------------------------------------------------------------------------ aliases


def bomb(levels: int, width: int = 9) -> str:
    """A valid workflow whose params hold `width**levels` strings once aliases are expanded."""
    lines = ["name: w", "tasks:", "  t:", "    run: [echo]", "    params:"]
    lines.append("      l0: &l0 [" + ", ".join(["lol"] * width) + "]")
    for i in range(1, levels):
        lines.append(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


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


def test_a_set_value_cannot_smuggle_an_alias_bomb() -> None:
    value = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x, x]"] + ["*a"] * 9) + "]"
    nested = "&b [" + ", ".join(["*a"] * 10) + "]"
    with pytest.raises(SpecError, match="aliases"):
        apply_overrides({}, [f"x=[{value}, {nested}, " + ", ".join(["*b"] * 2000) + "]"])


# ------------------------------------------------------------------------------ the C loader


def test_libyaml_parses_when_pyyaml_has_it() -> None:
    """The pure-Python parser took 6-18 s for a 10k-task file; libyaml's takes a fraction."""
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


def test_the_garbage_collector_is_back_on_after_a_load() -> None:
    assert gc.isenabled()
    load_text("name: w\ntasks: {a: {run: [x]}}\n")
    load_error("name: w\ntasks: {a: {run: [x], timout: 1}}\n")
    assert gc.isenabled()


def test_an_error_about_a_task_names_its_line_from_the_one_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The text of a 20,000-task body was composed three times to report one bad dependency
    (the line, then the section): an error now costs what a success does."""

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
