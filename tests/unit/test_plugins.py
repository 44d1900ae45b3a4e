"""Task types from plugins: a distribution declaring an entry point in `reviewflow.task_types`
is found, validated against and executed — here a real dist-info directory on sys.path."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from reviewflow import Engine, MemoryStore, SpecError, validate_spec
from reviewflow.executors import registry

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


LOADER_ONLY = """
import json, sys
from reviewflow.plugins import load_plugin_folders
failures = load_plugin_folders([sys.argv[1]])
before = sorted(m for m in sys.modules if m.startswith("reviewflow.review"))
from reviewflow.review.checks.registry import checks
print(json.dumps({
    "failures": failures,
    "review_imported_by_the_loader": before,
    "checks": [checks.get(n).__name__ for n in ("rfpl-listed", "rfpl-registered")],
}))
"""


def test_a_plugin_loaded_before_the_check_registry_gives_it_its_checks(tmp_path: Path) -> None:
    """The loader imports no registry (layers: plugins sit below review): what a plugin gives
    the check registry before it is imported, `register()` included, is applied when it is."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "both.py").write_text(
        textwrap.dedent(
            """\
            def listed(ctx):
                return []

            def registered(ctx):
                return []

            CHECKS = {"rfpl-listed": listed}

            def register(task_types, checks):
                checks.register("rfpl-registered", registered)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", LOADER_ONLY, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "failures": {},
        "review_imported_by_the_loader": [],
        "checks": ["listed", "registered"],
    }
