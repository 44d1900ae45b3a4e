"""The registry of task types (`executors/registry.py`): built-ins plus the entry points of
`reviewflow.task_types`, found, validated against and executed — here a real dist-info
directory on sys.path. A broken entry point is reported by name and breaks only the tasks that
use it; a spec read back from the store is not checked against this process's types."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from reviewflow import Engine, MemoryStore, SpecError, validate_spec
from reviewflow.executors import registry
from rfhelpers import arun

PLUGIN = """
from reviewflow.errors import SpecError


class EchoTaskType:
    name = "echo"

    def validate(self, spec):
        if "message" not in spec.params:
            raise SpecError("echo needs params.message", task=spec.name, field="params")

    async def execute(self, ctx):
        return {"echo": ctx.params["message"], "attempt": ctx.attempt}
"""


@pytest.fixture
def echo_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rf_echo_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "rf_echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rf-echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [reviewflow.task_types]
            echo = rf_echo_plugin:EchoTaskType
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # A fresh view of the registry for this test: plugins are looked up again, then forgotten.
    monkeypatch.setattr(registry, "_types", dict(registry._types))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    registry._types.pop("echo", None)


def test_unknown_type_lists_known_ones_without_the_plugin(monkeypatch):
    monkeypatch.setattr(registry, "_plugins_loaded", True)
    with pytest.raises(SpecError, match="unknown task type 'echo'") as info:
        validate_spec({"name": "w", "tasks": {"a": {"type": "echo"}}})
    assert "python" in str(info.value) and "shell" in str(info.value)


def test_plugin_type_is_discovered_validated_and_executed(echo_plugin, tmp_path):
    assert "echo" in registry.names()
    with pytest.raises(SpecError, match=r"echo needs params\.message"):
        validate_spec({"name": "w", "tasks": {"a": {"type": "echo"}}})
    spec = validate_spec(
        {"name": "w", "tasks": {"a": {"type": "echo", "params": {"message": "hi"}}}}
    )
    store = MemoryStore()
    engine = Engine(store, runs_dir=tmp_path / "runs")
    state = asyncio.run(engine.run(spec, run_id="p1"))
    assert state == "succeeded"
    (task,) = store.get_tasks("p1")
    assert task.result == '{"echo": "hi", "attempt": 1}'


def test_broken_task_type_entry_points_are_listed_and_the_others_work(
    fresh_registries, entry_point_dist, tmp_path
):
    assert registry.get("rfpt_ep_ok").name == "rfpt_ep_ok"
    assert registry.plugin_errors["rfpt_ep_ghost"] == (
        "ModuleNotFoundError: No module named 'rfpt_ep_not_installed'"
    )
    assert registry.plugin_errors["rfpt_ep_raises"] == ("RuntimeError: cannot build this task type")
    assert "rfpt_ep_ok" not in registry.plugin_errors
    assert "rfpt_ep_ok" in registry.names() and "rfpt_ep_ghost" not in registry.names()

    spec = validate_spec({"name": "w", "tasks": {"a": {"type": "rfpt_ep_ok", "params": {"x": 5}}}})
    store = MemoryStore()
    assert arun(Engine(store, runs_dir=tmp_path / "runs").run(spec, run_id="e1")) == "succeeded"
    assert store.get_tasks("e1")[0].result == '{"ok": 5}'

    with pytest.raises(SpecError) as info:
        validate_spec({"name": "w", "tasks": {"a": {"type": "rfpt_ep_ghost"}}})
    message = str(info.value)
    assert "unknown task type 'rfpt_ep_ghost'" in message
    assert (
        "plugin rfpt_ep_ghost failed to load: "
        "ModuleNotFoundError: No module named 'rfpt_ep_not_installed'"
    ) in message
    assert "plugin rfpt_ep_raises failed to load: RuntimeError" in message


def test_a_stored_spec_with_a_type_this_process_lacks_still_loads(fresh_registries) -> None:
    """A worker without the plugin still reads the run (its attempts fail, the run's logic
    works); at submit the same type is refused."""
    from reviewflow.config import stored_spec

    registry._plugins_loaded = True
    body = {"name": "w", "tasks": {"a": {"type": "rfpt_absent"}}}
    with pytest.raises(SpecError, match="unknown task type 'rfpt_absent'"):
        validate_spec(body)
    assert stored_spec(json.dumps(body)).tasks["a"].type == "rfpt_absent"


def test_a_registered_type_replaces_one_of_the_same_name(fresh_registries) -> None:
    class Quiet:
        name = "shell"

        def validate(self, spec: object) -> None:
            pass

        async def execute(self, ctx: object) -> dict[str, str]:
            return {}

    quiet = Quiet()
    registry.register(quiet)
    assert registry.get("shell") is quiet
    validate_spec({"name": "w", "tasks": {"a": {"type": "shell"}}})  # no `run` needed now
