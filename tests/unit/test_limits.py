"""The bounds on what a workflow's author controls (`limits.py`): task and edge counts refused
before any work proportional to them, nesting, and text no store, log or argv can hold (NUL, a
lone surrogate, a string past the bound), each refused with the task and field named — and a
message that stays printable when the bad text is the key itself. The same bounds through the
CLI, POST /runs and real runs: test_hostile_input.py."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from reviewflow.config import validate_spec
from reviewflow.errors import SpecError
from reviewflow.limits import LIMITS, Limits, check_data

SMALL = Limits(max_tasks=3, max_edges=2, max_depth=4, max_string_chars=16)


def refused(data: dict[str, Any], limits: Limits = SMALL) -> SpecError:
    with pytest.raises(SpecError) as info:
        check_data(data, limits)
    return info.value


def test_the_default_file_limit_is_ten_mebibytes() -> None:
    assert LIMITS.max_file_bytes == 10 * 1024 * 1024


def test_params_nested_too_deep_are_refused_naming_the_field() -> None:
    deep = functools.reduce(lambda inner, _: {"x": inner}, range(100), {})
    with pytest.raises(SpecError, match="nested deeper than") as info:
        validate_spec({"name": "w", "tasks": {"t": {"run": ["echo"], "params": deep}}})
    assert info.value.task == "t" and info.value.field.startswith("params.x.x")


def test_task_and_edge_counts_are_bounded_before_any_task_is_validated() -> None:
    # One shared body: the count is refused before any body is looked at.
    body = {"bogus": 1}
    tasks = {f"t{i}": body for i in range(LIMITS.max_tasks + 1)}
    with pytest.raises(SpecError, match="1,000,001 tasks: at most 1,000,000") as info:
        validate_spec({"name": "w", "tasks": tasks})
    assert info.value.field == "tasks"
    needs = ["a"] * (LIMITS.max_edges + 1)
    with pytest.raises(SpecError, match="needs entries: at most 10,000,000"):
        validate_spec({"name": "w", "tasks": {"a": {"run": ["x"]}, "b": {"needs": needs}}})


def test_a_workflow_past_the_old_100k_task_limit_is_accepted() -> None:
    body = {"run": ["true"]}
    tasks = {f"t{i}": body for i in range(100_001)}
    spec = validate_spec({"name": "w", "tasks": tasks})
    assert len(spec.tasks) == 100_001


def test_on_failure_hooks_count_as_tasks_and_their_needs_as_edges() -> None:
    assert (
        "4 tasks: at most 3"
        in refused({"tasks": {"a": {}, "b": {}}, "on_failure": {"h": {}, "i": {}}}).message
    )
    error = refused({"tasks": {"a": {"needs": ["x", "y"]}}, "on_failure": {"h": {"needs": ["a"]}}})
    assert (error.field, error.message) == ("tasks", "3 needs entries: at most 2")
    check_data({"tasks": {"a": {"needs": ["x"]}}, "on_failure": {"h": {"needs": ["a"]}}}, SMALL)


def test_nesting_is_counted_from_the_workflow_itself() -> None:
    check_data({"tasks": {"t": {"params": {}}}}, SMALL)  # four levels: the bound
    error = refused({"tasks": {"t": {"params": {"x": {}}}}})
    assert (error.task, error.field) == ("t", "params.x")
    assert error.message == "nested deeper than 4 levels"
    error = refused({"defaults": {"env": {"a": [[1]]}}})
    assert (error.task, error.field) == (None, "defaults.env.a.0")


@pytest.mark.parametrize(
    ("data", "task", "field", "message"),
    [
        ({"tasks": {"t": {"run": ["ok", "a\x00b"]}}}, "t", "run.1", "value contains a NUL"),
        ({"tasks": {"t": {"env": {"A\x00": "1"}}}}, "t", "env.A\x00", "key contains a NUL"),
        ({"tasks": {"t": {"cwd": "x" * 17}}}, "t", "cwd", "value of 17 characters: at most 16"),
        ({"description": "\udc80"}, None, "description", "value contains a lone surrogate"),
        ({"tasks": {"\ud800": {}}}, "\\ud800", None, "key contains a lone surrogate"),
    ],
    ids=["nul-value", "nul-key", "long", "surrogate-value", "surrogate-key"],
)
def test_text_no_store_or_argv_can_hold_is_refused_naming_where(
    data: dict[str, Any], task: str | None, field: str | None, message: str
) -> None:
    error = refused(data)
    assert (error.task, error.field) == (task, field)
    assert error.message.startswith(message)
    str(error).encode("utf-8")  # printable: the message itself holds no lone surrogate


def test_any_text_utf_8_can_hold_is_accepted() -> None:
    check_data({"tasks": {"té": {"description": "naïve 😀 中文", "run": ["é" * 10]}}}, SMALL)


def test_a_deep_field_is_named_by_its_first_eight_levels() -> None:
    deep: Any = "a\x00"
    for key in reversed(["k" * 50, *"bcdefghij"]):
        deep = {key: deep}
    error = refused({"tasks": {"t": deep}}, Limits(max_depth=64))
    assert error.task == "t"
    assert error.field == ".".join(["k" * 40, *"bcdef", "…"])
