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
from reviewflow.limits import Limits
from reviewflow.server.http import ApiError
from reviewflow.server.submit import from_yaml
from reviewflow.yamlsafe import TaskLines
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
    assert isinstance(yamlsafe._event_parser("a: 1"), yaml._yaml.CParser)


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
    parser = yamlsafe._event_parser

    def counting(text: str) -> Any:
        composed.append(1)
        return parser(text)

    monkeypatch.setattr(yamlsafe, "_event_parser", counting)
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


# ------------------------------------------------------------------ built from parser events
# The loader builds data straight from the parser's events (no node graph): it must give what
# PyYAML's safe loader gives, and refuse what it refused, with the same one-line errors.

CORPUS = [
    "name: w\ntasks:\n  a: {run: [echo, hi], timeout: 30s}\n  b:\n    call: m:f\n    needs: [a]\n",
    "x: [1, -2, 0x10, 0o7, 1.5, .inf, ~, null, '', 'a b', \"q\\n\", true, False]",
    "d: 2026-12-01\nt: 2026-12-01T10:00:00Z\ns: !!str 12\ni: !!int '7'\nf: !!float '1'",
    "base: &b {run: [echo], timeout: 5s, env: {A: '1'}}\nt: {<<: *b, timeout: 9s}\nu: *b\n",
    "a: &a {x: 1, y: 2}\nb: &b {y: 3, z: 4}\nc: {<<: [*a, *b], w: 5}\nd: {w: 0, <<: *b}\n",
    "l: &l [1, [2, 3], {k: v}]\nm: [*l, *l]\nn: {<<: {p: 1}, q: 2}\n",
    "? [1, 2]\n: tuple key?\n",  # refused below (unhashable), listed for the error check
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
    "- &s hello\n- *s\n- {*s : x}\n",
    "{}",
    "[]",
    "plain",
]
"""Documents the loader must read exactly as PyYAML does (no YAML 1.1 `yes`/`no` booleans)."""


def _pyyaml(text: str) -> Any:
    return yaml.load(text, Loader=yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


@pytest.mark.parametrize("text", [t for t in CORPUS if not t.startswith("?")])
def test_the_data_is_what_pyyamls_safe_loader_gives(text: str) -> None:
    assert parse_yaml(text) == _pyyaml(text)


def test_an_alias_is_the_same_object_and_a_merge_is_a_copy() -> None:
    data = parse_yaml("a: &a {x: 1}\nb: *a\nc: {<<: *a, y: 2}\n")
    assert data["b"] is data["a"]
    assert data["c"] == {"x": 1, "y": 2} and data["a"] == {"x": 1}


def test_yaml_1_1_booleans_and_value_keys_stay_strings() -> None:
    assert parse_yaml("run: [echo, yes, no, on, off, true, =]") == {
        "run": ["echo", "yes", "no", "on", "off", True, "="]
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{a: 1, a: 2}", "line 1, column 8: duplicate key 'a'"),
        ("? [1, 2]\n: x\n", "line 1, column 3: unhashable key [1, 2]"),
        ("a: *nowhere", "line 1, column 4: found undefined alias"),
        ("a: &x 1\nb: &x 2\n", "line 2, column 4: second occurrence"),
        ("--- 1\n--- 2\n", "line 2, column 1: but found another document"),
        ("a: &x [*x]", "line 1, column 4: a recursive alias (a node that contains itself)"),
        ("a: !!binary aGk=", "line 1, column 4: unsupported tag 'tag:yaml.org,2002:binary'"),
        ("a: !!python/name:os.system x", "unsupported tag"),
        ("a: !!map [1]", "line 1, column 4: unsupported tag 'tag:yaml.org,2002:map'"),
        ("<<: 1", "line 1, column 5: << merges a mapping or a list of mappings"),
        ("a: {<<: [1]}", "line 1, column 10: << merges a mapping or a list of mappings"),
        ("a: [<<]", "unsupported tag 'tag:yaml.org,2002:merge'"),
        ("a: !!int x", "line 1, column 4: not a valid int: 'x'"),
        # a syntax error later in the file is reported before a duplicate key, as before
        ("{b: 1, b: 2, c: [}", "line 1, column 18: did not find expected node content"),
    ],
)
def test_what_was_refused_is_refused_with_the_same_error(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_yaml(text, file="wf.yaml")
    assert str(info.value).startswith("wf.yaml: "), info.value
    assert message in str(info.value), info.value
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!int ''", "not a valid int: ''"),
        ("!!float ''", "not a valid float: ''"),
        ("!!bool maybe", "not a valid bool: 'maybe'"),
        ("!!timestamp soon", "not a valid timestamp: 'soon'"),
        ("!!timestamp 2026-13-45", "not a valid timestamp: '2026-13-45'"),
    ],
)
def test_an_explicit_tag_on_text_it_does_not_fit_is_a_one_line_error(
    value: str, message: str
) -> None:
    # PyYAML's constructors assume the text matched the tag's pattern: `!!int ''` raised
    # IndexError and `!!bool maybe` KeyError, which `reviewflow validate` printed as a traceback.
    with pytest.raises(SpecError) as info:
        parse_yaml(f"name: w\nretries: {value}\n", file="wf.yaml")
    assert str(info.value) == f"wf.yaml: line 2, column 10: {message}"


def test_bounds_are_counted_while_the_events_are_read() -> None:
    limits = Limits(max_alias_nodes=20, max_alias_chars=1000, max_depth=3)
    ok = "a: &a [1, 2, 3]\nb: [*a, *a]\n"  # 2 x 4 nodes added
    assert parse_yaml(ok, limits=limits)["b"] == [[1, 2, 3], [1, 2, 3]]
    with pytest.raises(SpecError, match="aliases expand to more than 20 nodes"):
        parse_yaml("a: &a [1, 2, 3]\nb: [" + ", ".join(["*a"] * 6) + "]\n", limits=limits)
    with pytest.raises(SpecError, match="more than 1,000 characters"):
        parse_yaml(f"a: &a {'x' * 600}\nb: [*a, *a]\n", limits=limits)
    assert parse_yaml("a: [[1]]", limits=limits) == {"a": [[1]]}
    with pytest.raises(SpecError, match="line 1, column 6: nested deeper than 3 levels"):
        parse_yaml("a: [[[1]]]", limits=limits)
    # an alias that puts a deep value deeper still
    with pytest.raises(SpecError, match="nested deeper than 3 levels"):
        parse_yaml("a: &d [[1]]\nb: [*d]\n", limits=limits)


def test_a_merge_source_is_not_a_level_of_nesting() -> None:
    # `<<: {...}` and `<<: [...]` are a level or two deeper in the text than their keys are in
    # the data: the bound is on the data, as it was when a node graph was composed first.
    limits = Limits(max_depth=3)
    inline = "y: {<<: {a: {b: 1}}}\n"
    listed = "y: {<<: [{a: {b: 1}}, {c: 2}]}\n"
    aliased = "x: &x {a: 1}\ny: {<<: [*x], b: {c: 1}}\nz: {<<: *x, d: {e: 1}}\n"
    assert parse_yaml(inline, limits=limits) == {"y": {"a": {"b": 1}}}
    assert parse_yaml(listed, limits=limits) == {"y": {"a": {"b": 1}, "c": 2}}
    assert parse_yaml(aliased, limits=limits)["z"] == {"a": 1, "d": {"e": 1}}
    for text in (
        "y: {<<: {a: {b: [1]}}}\n",
        "y: {<<: [{a: {b: [1]}}]}\n",
        "x: &x {a: {b: [1]}}\ny: {<<: *x}\n",
    ):
        with pytest.raises(SpecError, match="nested deeper than 3 levels"):
            parse_yaml(text, limits=limits)


def test_task_lines_name_each_task_key() -> None:
    lines: TaskLines = {}
    parse_yaml(
        "name: w\ntasks:\n  a: {run: [x]}\n  b:\n    run: [y]\non_failure: {h: {run: [z]}}\n",
        task_lines=lines,
    )
    assert lines == {"a": ("tasks", 3), "b": ("tasks", 4), "h": ("on_failure", 6)}
