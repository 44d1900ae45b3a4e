"""The workflow model (reviewflow.spec): durations, priorities, defaults, graph checks, task types.

Specs are built from plain data with `validate_spec` (what a YAML file or the Python API gives);
every problem must come out as one SpecError naming the task and the field at fault.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reviewflow.config import validate_spec
from reviewflow.errors import SpecError
from reviewflow.spec import (
    PRIORITY_NAMES,
    RetryPolicy,
    WorkflowSpec,
    parse_duration,
    parse_priority,
)


def spec_of(tasks: dict[str, Any], **fields: Any) -> WorkflowSpec:
    return validate_spec({"name": "wf", **fields, "tasks": tasks})


def error_of(tasks: dict[str, Any], **fields: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_of(tasks, **fields)
    return info.value


def shell(**body: Any) -> dict[str, Any]:
    return {"type": "shell", "run": ["true"], **body}


# ---------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2m30s", 150.0),
        ("1.5s", 1.5),
        ("1d", 86400.0),
        ("90", 90.0),
        ("0.5", 0.5),
        (" 10S ", 10.0),
        (0, 0.0),
        (12, 12.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration_accepts_units_and_numbers(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "5x",
        "m5",
        "-1",
        "-5s",
        "1h-",
        "5 parsecs",
        "1.2.3s",
        "nan",
        "inf",
        "1e400",
        -1,
        float("nan"),
        float("inf"),
        True,
        None,
        [1],
        {"s": 1},
    ],
)
def test_parse_duration_rejects_garbage(bad: Any) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(bad)


@given(st.integers(0, 10_000), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_duration_parts_add_up(h: int, m: int, s: int, ms: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s{ms}ms") == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ({"tasks": {"a": shell(timeout="5x")}}, "timeout"),
        ({"tasks": {"a": shell(delay="soon")}}, "delay"),
        ({"tasks": {"a": shell(kill_grace="-3s")}}, "kill_grace"),
        ({"tasks": {"a": shell(retry={"base_delay": "zz"})}}, "retry.base_delay"),
        ({"tasks": {"a": shell(retry={"max_delay": "1y"})}}, "retry.max_delay"),
    ],
)
def test_bad_task_duration_names_task_and_field(where: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_spec({"name": "wf", **where})
    exc = info.value
    assert (exc.task, exc.field) == ("a", field)
    assert "bad duration" in exc.message
    assert f"task 'a': field '{field}'" in str(exc)


@pytest.mark.parametrize(("field", "value"), [("timeout", "3q"), ("defaults", {"timeout": "x"})])
def test_bad_run_level_duration_names_the_field(field: str, value: Any) -> None:
    exc = error_of({"a": shell()}, **{field: value})
    expected = "timeout" if field == "timeout" else "defaults.timeout"
    assert exc.field == expected
    assert exc.task is None
    assert "bad duration" in exc.message


def test_huge_integer_duration_is_a_spec_error() -> None:
    # float(10**400) raises OverflowError, which is not a ValueError: it must still come out
    # as a SpecError naming the field, not as a crash.
    exc = error_of({"a": shell(timeout=10**400)})
    assert (exc.task, exc.field) == ("a", "timeout")


# ---------------------------------------------------------------------------- priorities


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("high", 3),
        ("medium", 2),
        ("low", 1),
        ("HIGH", 3),
        (" Low ", 1),
        (7, 7),
        (-2, -2),
        ("10", 10),
        (0, 0),
    ],
)
def test_priorities(value: Any, expected: int) -> None:
    assert parse_priority(value) == expected
    assert spec_of({"a": shell(priority=value)}).tasks["a"].priority == expected


def test_priority_names_table() -> None:
    assert PRIORITY_NAMES == {"high": 3, "medium": 2, "low": 1}


@pytest.mark.parametrize("bad", ["urgent", "", "1.5", 1.5, True, None, [3]])
def test_bad_priority_names_task_and_field(bad: Any) -> None:
    exc = error_of({"a": shell(priority=bad)})
    assert (exc.task, exc.field) == ("a", "priority")


# ---------------------------------------------------------------------------- defaults


def test_defaults_when_fields_are_absent() -> None:
    spec = spec_of({"a": {"run": ["true"]}})
    task = spec.tasks["a"]
    assert task.type == "shell"
    assert task.timeout == 60.0
    assert task.priority == 2
    assert task.kill_grace == 5.0
    assert task.delay == 0.0
    assert task.needs == []
    assert task.retry == RetryPolicy()
    assert task.retry.max_retries == 3
    assert task.retry.base_delay == 1.0
    assert task.retry.multiplier == 2.0
    assert task.retry.max_delay == 300.0
    assert task.retry.jitter is True
    assert spec.failure_policy == "fail_fast"
    assert spec.max_concurrency is None
    assert spec.timeout is None
    assert spec.on_failure == {}


def test_type_is_inferred_from_run_or_call() -> None:
    spec = spec_of({"a": {"run": "echo hi"}, "b": {"call": "mod:fn"}})
    assert spec.tasks["a"].type == "shell"
    assert spec.tasks["b"].type == "python"


def test_run_level_defaults_apply_unless_the_task_sets_its_own() -> None:
    spec = spec_of(
        {
            "plain": shell(),
            "own": shell(timeout="5s", priority="low", kill_grace=1, env={"B": "task", "C": "c"}),
        },
        defaults={
            "timeout": "2m",
            "priority": "high",
            "kill_grace": "10s",
            "env": {"A": "default", "B": "default"},
        },
    )
    plain, own = spec.tasks["plain"], spec.tasks["own"]
    assert (plain.timeout, plain.priority, plain.kill_grace) == (120.0, 3, 10.0)
    assert (own.timeout, own.priority, own.kill_grace) == (5.0, 1, 1.0)
    assert plain.env == {"A": "default", "B": "default"}
    assert own.env == {"A": "default", "B": "task", "C": "c"}


def test_default_retry_is_merged_key_by_key_with_the_task_retry() -> None:
    spec = spec_of(
        {
            "inherits": shell(),
            "overrides": shell(retry={"max_retries": 1, "jitter": False}),
            "empty": shell(retry={}),
        },
        defaults={"retry": {"max_retries": 5, "base_delay": "2s", "multiplier": 3}},
    )
    inherits = spec.tasks["inherits"].retry
    assert (inherits.max_retries, inherits.base_delay, inherits.multiplier) == (5, 2.0, 3.0)
    assert inherits.jitter is True
    overrides = spec.tasks["overrides"].retry
    assert (overrides.max_retries, overrides.base_delay, overrides.multiplier) == (1, 2.0, 3.0)
    assert overrides.jitter is False
    assert spec.tasks["empty"].retry == inherits
    # untouched keys keep the built-in defaults
    assert inherits.max_delay == 300.0


def test_defaults_apply_to_on_failure_tasks_too() -> None:
    spec = spec_of({"a": shell()}, defaults={"timeout": "7s"}, on_failure={"notify": shell()})
    assert spec.on_failure["notify"].timeout == 7.0


def test_default_retry_typo_is_rejected() -> None:
    exc = error_of({"a": shell()}, defaults={"retry": {"max_retry": 2}})
    assert exc.field is not None and "max_retry" in exc.field
    assert "unknown field" in exc.message


# ---------------------------------------------------------------------------- argv


def test_string_run_is_split_with_shlex() -> None:
    spec = spec_of({"a": {"run": "python -c 'print(1 + 1)' \"two words\" x\\ y"}})
    assert spec.tasks["a"].run == ["python", "-c", "print(1 + 1)", "two words", "x y"]


def test_list_run_is_kept_and_numbers_become_strings() -> None:
    spec = spec_of({"a": {"run": ["sleep", 1, 0.5, "a b"]}})
    assert spec.tasks["a"].run == ["sleep", "1", "0.5", "a b"]


def test_unbalanced_quote_in_run_is_a_spec_error() -> None:
    exc = error_of({"a": {"run": "echo 'oops"}})
    assert (exc.task, exc.field) == ("a", "run")
    assert "cannot split" in exc.message


# ---------------------------------------------------------------------------- graph checks


def _cycle_names(message: str) -> list[str]:
    match = re.fullmatch(r"cycle: (.+)", message)
    assert match, message
    return match.group(1).split(" -> ")


@pytest.mark.parametrize(
    "needs",
    [
        {"a": ["b"], "b": ["a"]},
        {"a": ["c"], "b": ["a"], "c": ["b"]},
        {"x": ["y"], "y": ["z"], "z": ["w"], "w": ["x"], "free": [], "tail": ["x"]},
    ],
    ids=["2-cycle", "3-cycle", "4-cycle-with-bystanders"],
)
def test_cycle_error_names_the_cycle(needs: dict[str, list[str]]) -> None:
    exc = error_of({name: shell(needs=deps) for name, deps in needs.items()})
    names = _cycle_names(exc.message)
    assert names[0] == names[-1]
    in_cycle = {n for n in needs if n not in ("free", "tail")}
    assert set(names) == in_cycle
    assert len(names) == len(in_cycle) + 1
    # "x -> y" reads "x needs y"
    for frm, to in itertools.pairwise(names):
        assert to in needs[frm], (frm, to, exc.message)
    assert exc.field == "needs"
    assert exc.task in in_cycle


def test_two_cycle_message_is_exact() -> None:
    exc = error_of({"a": shell(needs=["b"]), "b": shell(needs=["a"])})
    assert exc.message in ("cycle: a -> b -> a", "cycle: b -> a -> b")


def test_self_dependency_is_a_cycle() -> None:
    exc = error_of({"a": shell(needs=["a"])})
    assert exc.message == "cycle: a -> a"
    assert (exc.task, exc.field) == ("a", "needs")


def test_unknown_dependency_is_named() -> None:
    exc = error_of({"a": shell(), "b": shell(needs=["a", "nope"])})
    assert (exc.task, exc.field) == ("b", "needs")
    assert "unknown dependency 'nope'" in exc.message


def test_dependency_listed_twice_is_rejected() -> None:
    exc = error_of({"a": shell(), "b": shell(needs=["a", "a"])})
    assert "listed twice" in exc.message


def test_on_failure_may_not_depend_on_main_tasks() -> None:
    exc = error_of({"a": shell()}, on_failure={"n": shell(needs=["a"])})
    assert exc.task == "n"
    assert "not in on_failure" in exc.message


def test_a_name_in_both_tasks_and_on_failure_is_rejected() -> None:
    exc = error_of({"a": shell()}, on_failure={"a": shell()})
    assert exc.task == "a"


def test_a_workflow_needs_tasks() -> None:
    assert error_of({}).field == "tasks"
    with pytest.raises(SpecError, match="missing required field"):
        validate_spec({"name": "wf"})


# ---------------------------------------------------------------------------- task types and fields


def test_unknown_task_type_lists_the_known_ones() -> None:
    exc = error_of({"a": {"type": "docker", "run": ["x"]}})
    assert (exc.task, exc.field) == ("a", "type")
    assert "unknown task type 'docker'" in exc.message
    known = re.search(r"known: ([^)]*)", exc.message)
    assert known is not None
    assert {"python", "shell"} <= set(known.group(1).split(", "))


def test_shell_task_needs_run() -> None:
    exc = error_of({"a": {"type": "shell"}})
    assert (exc.task, exc.field) == ("a", "run")
    assert "run: [command, args...]" in exc.message


def test_python_task_needs_call() -> None:
    exc = error_of({"a": {"type": "python"}})
    assert (exc.task, exc.field) == ("a", "call")


@pytest.mark.parametrize("call", ["nomodule", "mod:", ":fn"])
def test_python_call_must_be_module_colon_function(call: str) -> None:
    exc = error_of({"a": {"type": "python", "call": call}})
    assert (exc.task, exc.field) == ("a", "call")


@pytest.mark.parametrize(
    ("tasks", "fields", "field"),
    [
        ({"a": shell(timout=5)}, {}, "timout"),
        ({"a": shell(retry={"max_retires": 1})}, {}, "retry.max_retires"),
        ({"a": shell()}, {"max_concurency": 2}, "max_concurency"),
    ],
)
def test_unknown_field_is_rejected(
    tasks: dict[str, Any], fields: dict[str, Any], field: str
) -> None:
    exc = error_of(tasks, **fields)
    assert exc.field == field
    assert "unknown field" in exc.message


def test_concurrency_limit_needs_a_key_and_one_limit_per_key() -> None:
    assert error_of({"a": shell(concurrency_limit=2)}).field == "concurrency_limit"
    exc = error_of(
        {
            "a": shell(concurrency_key="k", concurrency_limit=1),
            "b": shell(concurrency_key="k", concurrency_limit=2),
        }
    )
    assert "two limits" in exc.message
    spec = spec_of(
        {"a": shell(concurrency_key="gpu", concurrency_limit=1), "b": shell()},
        concurrency_limits={"db": 3},
    )
    assert spec.key_limits() == {"db": 3, "gpu": 1}


def test_bad_names_are_rejected() -> None:
    assert error_of({"bad name": shell()}).task == "bad name"
    with pytest.raises(SpecError) as info:
        validate_spec({"name": "has space", "tasks": {"a": shell()}})
    assert info.value.field == "name"


def test_not_data_is_rejected() -> None:
    with pytest.raises(SpecError, match="must be a mapping"):
        validate_spec(["a"])


def test_spec_round_trips_through_json() -> None:
    spec = spec_of(
        {"a": shell(priority="high", retry={"max_retries": 1}), "b": shell(needs=["a"])},
        timeout="30m",
        max_concurrency=2,
        on_failure={"n": shell()},
    )
    assert WorkflowSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize("field", ["delay", "timeout", "not_before"])
def test_durations_over_ten_years_are_bad_input(field):
    with pytest.raises(SpecError, match="more than 10 years"):
        validate_spec({"name": "w", "tasks": {"a": {"run": ["x"], field: 99999999999999}}})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "shell", "run": ["x"], "call": "m:f"}, "call"),
        ({"type": "python", "call": "m:f", "run": ["x"]}, "run"),
    ],
)
def test_a_field_of_the_other_task_type_is_rejected(body, field):
    with pytest.raises(SpecError) as info:
        validate_spec({"name": "w", "tasks": {"a": body}})
    assert info.value.field == field


def test_a_bad_dependency_or_a_cycle_is_refused_before_any_task_is_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 20,000-task POST /runs body with one bad dependency took a second of validation
    before its 422: the graph is checked on the raw data first."""
    from reviewflow.executors.registry import registry

    validated: list[str] = []
    monkeypatch.setattr(registry, "validate_task", lambda spec: validated.append(spec.name))
    tasks: dict[str, Any] = {
        f"t{i}": {"run": ["x"], "needs": [f"t{i - 1}"] if i else []} for i in range(1000)
    }
    tasks["t999"]["needs"] = ["nope"]
    with pytest.raises(SpecError, match="unknown dependency 'nope' \\(not in tasks\\)") as info:
        validate_spec({"name": "w", "tasks": tasks})
    assert info.value.task == "t999" and info.value.field == "needs"
    tasks["t999"]["needs"] = ["t998"]
    tasks["t0"]["needs"] = ["t999"]
    with pytest.raises(SpecError, match=r"^task 't0': field 'needs': cycle: t0 -> t999 -> "):
        validate_spec({"name": "w", "tasks": tasks})
    assert validated == []
    tasks["t0"]["needs"] = []
    assert len(validate_spec({"name": "w", "tasks": tasks}).tasks) == 1000
    assert len(validated) == 1000


# ---------------------------------------------------------------------- the stored JSON

STORED_CASES: list[dict[str, Any]] = [
    {"name": "wf", "tasks": {"a": {"call": "m:f"}}},
    {
        "name": "wf",
        "description": "all the fields",
        "notifications": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook"}],
        "max_concurrency": 3,
        "timeout": "1h",
        "failure_policy": "continue",
        "concurrency_limits": {"db": 2},
        "not_before": "2026-12-01T10:00:00",
        "schedules": [{"interval": "1h"}],
        "tasks": {
            "a": {
                "run": "echo hi",
                "priority": "high",
                "timeout": "60s",
                "cwd": "/tmp",
                "inherit_env": ["PATH"],
            },
            "b": {
                "call": "m:f",
                "needs": ["a"],
                "trigger": "all_done",
                "env": {"X": 1},
                "params": {"when": "2026-01-01", "n": [1, 2.5, None, True]},
                "retry": {"max_retries": 5, "jitter": False},
                "concurrency_key": "db",
                "delay": "2s",
                "not_before": "30s",
                "kill_grace": 1,
                "description": "b",
            },
            "ok": {"type": "approval", "params": {"approvers": ["ann"]}},
            "ok60": {"type": "approval", "timeout": "60s", "on_timeout": "approve"},
        },
        "on_failure": {"h": {"run": ["x"], "needs": []}},
    },
    # a `defaults:` section: a task field left out would read back as the default's value
    {
        "name": "wf",
        "defaults": {"timeout": "5s", "priority": "low", "retry": {"max_retries": 0}},
        "tasks": {"a": {"run": ["x"], "timeout": "60s", "retry": {"max_retries": 3}}},
    },
    {"name": "wf", "defaults": {"env": {"A": "1"}}, "tasks": {"a": {"run": ["x"]}}},
]


@pytest.mark.parametrize("data", STORED_CASES)
def test_the_stored_json_reads_back_as_the_same_spec(data: dict[str, Any]) -> None:
    spec = validate_spec(data)
    assert WorkflowSpec.model_validate_json(spec.stored_json()) == spec
    # a run stored by an earlier version (every field written) still reads, and is the same
    # request for an idempotency key
    assert WorkflowSpec.model_validate_json(spec.model_dump_json()) == spec
    assert spec.stored_as(spec.stored_json()) and spec.stored_as(spec.model_dump_json())
    assert not spec.stored_as(spec_of({"other": {"run": ["x"]}}).stored_json())


@pytest.mark.parametrize("data", STORED_CASES)
def test_a_worker_reads_a_stored_spec_task_by_task_as_the_whole_spec(data: dict[str, Any]) -> None:
    """The workers validate a stored spec's tasks on first read (cluster/dag.Graph.stored):
    each is the task the whole spec's validation gives, in both stored formats."""
    from reviewflow.cluster.dag import Graph

    spec = validate_spec(data)
    whole = Graph.of(spec, {})
    for text in (spec.stored_json(), spec.model_dump_json()):
        graph = Graph.stored(text, {})
        assert list(graph.tasks) == list(whole.tasks)
        for name in reversed(list(whole.tasks)):  # in any order
            assert graph.tasks[name] == whole.tasks[name]
        assert (graph.hooks, graph.dependents) == (whole.hooks, whole.dependents)
        assert (graph.failure_policy, graph.timeout, graph.not_before) == (
            spec.failure_policy,
            spec.timeout,
            spec.not_before,
        )
        assert graph.spec == spec


def test_a_task_is_stored_with_only_what_differs_from_its_defaults() -> None:
    """A 1M-task run's submit held its spec's JSON several times over: ~440 bytes a task
    with every field written, ~60 with only those the task sets."""
    spec = spec_of({f"t{i}": {"call": "noop_tasks:noop"} for i in range(1000)})
    text = spec.stored_json()
    stored = json.loads(text)
    assert stored["tasks"]["t7"] == {"name": "t7", "type": "python", "call": "noop_tasks:noop"}
    assert len(text) < 70 * 1000 < len(spec.model_dump_json()) / 5
    # the workflow's own fields in full, notifications third (the outbox finds it in the text)
    assert list(stored)[:3] == ["name", "description", "notifications"]


@pytest.mark.parametrize("data", STORED_CASES)
def test_the_raw_readers_read_the_stored_json_as_the_full_one(data: dict[str, Any]) -> None:
    """The dashboard's graph, /metrics' queue by priority, the approval checks and the outbox
    read the stored text without the model, with the models' defaults."""
    from reviewflow.server.metrics import _priorities
    from reviewflow.server.ui_graph import build_graph
    from reviewflow.store.outbox import notify_config

    spec = validate_spec(data)
    compact, full = spec.stored_json(), spec.model_dump_json()
    names = [*spec.tasks, *spec.on_failure]

    class Row:
        def __init__(self, name: str) -> None:
            self.name, self.state = name, "ready"

    rows = [Row(n) for n in names]
    assert build_graph(compact, rows) == build_graph(full, rows)
    assert _priorities(compact) == _priorities(full)
    assert notify_config(compact, "wf") == notify_config(full, "wf")
    for text in (compact, full):
        bodies = {**json.loads(text)["tasks"], **json.loads(text)["on_failure"]}
        approvals = {n for n, b in bodies.items() if b.get("type") == "approval"}
        assert approvals == {
            n for n in names if (spec.tasks | spec.on_failure)[n].type == "approval"
        }
        approvers = {n: (b.get("params") or {}).get("approvers") for n, b in bodies.items()}
        assert approvers == {
            n: (spec.tasks | spec.on_failure)[n].params.get("approvers") for n in names
        }
