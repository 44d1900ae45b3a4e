"""Plugins, in-process: folders named in the config (`plugins: [plugins/]`) and entry points of
the groups `reviewflow.task_types` and `reviewflow.checks` (a real dist-info directory on
sys.path, as an installed package leaves it).

Each test works on private copies of the global registries (task types, checks, plugin files
already imported), put back afterwards, so nothing registered here leaks into other tests.
The same features through the CLI, with a package really installed by pip, are in
tests/integration/test_review_plugins_cli.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reviewflow import Engine, MemoryStore, SpecError, validate_spec
from reviewflow.config import load_workflow, load_workflow_text
from reviewflow.executors import registry
from reviewflow.plugins import load_plugin_folders, plugin_errors
from reviewflow.review.checks.registry import checks
from rfhelpers import arun, write_files

DOUBLE_TYPE = """
    from reviewflow.errors import SpecError


    class Double:
        name = "rfpt_double"

        def validate(self, spec):
            if "n" not in spec.params:
                raise SpecError("rfpt_double needs params.n", task=spec.name, field="params")

        async def execute(self, ctx):
            return {"n": ctx.params["n"] * 2}


    TASK_TYPES = [Double]
"""

BROKEN_IMPORT = """
    import rfpt_missing_dependency  # not installed anywhere

    class Provided:
        name = "rfpt_from_broken"

    TASK_TYPES = [Provided]
    CHECKS = {"rfpt-from-broken": lambda ctx: []}
"""


# ------------------------------------------------------------------------------ plugin folders


def test_a_folder_plugin_registers_task_types_and_checks_in_every_documented_way(
    fresh_registries, tmp_path
):
    folder = write_files(
        tmp_path / "plugins",
        {
            "lists.py": """
            class AsClass:
                name = "rfpt_as_class"
                def validate(self, spec): pass
                async def execute(self, ctx): return "class"

            class AsObject:
                name = "rfpt_as_object"
                def validate(self, spec): pass
                async def execute(self, ctx): return "object"

            def sync_check(ctx):
                return []

            TASK_TYPES = [AsClass, AsObject()]
            CHECKS = {"rfpt-sync": sync_check}
        """,
            "registering.py": """
            class ByRegister:
                name = "rfpt_by_register"
                def validate(self, spec): pass
                async def execute(self, ctx): return "register"

            async def async_check(ctx):
                return []

            def register(task_types, checks):
                task_types.register(ByRegister())
                checks.register("rfpt-registered", async_check)
        """,
            # A package folder: its __init__ may import its own submodules relatively.
            "packaged/__init__.py": """
            from .impl import check
            CHECKS = {"rfpt-packaged": check}
        """,
            "packaged/impl.py": "def check(ctx):\n    return []\n",
            # Not plugins: private and hidden files, other files, folders without __init__.py.
            "_private.py": "raise RuntimeError('a private helper must not be imported')\n",
            ".hidden.py": "raise RuntimeError('a hidden file must not be imported')\n",
            "notes.txt": "not python\n",
            "loose/thing.py": "raise RuntimeError('a folder without __init__ is not a plugin')\n",
        },
    )
    assert load_plugin_folders([folder]) == {}
    assert plugin_errors() == {}
    for name in ("rfpt_as_class", "rfpt_as_object", "rfpt_by_register"):
        assert registry.get(name).name == name
    assert {"rfpt_as_class", "rfpt_by_register"} <= set(registry.names())
    assert checks.get("rfpt-sync").__name__ == "sync_check"
    assert checks.get("rfpt-registered").__name__ == "async_check"
    assert checks.get("rfpt-packaged").__name__ == "check"
    assert {"rfpt-sync", "rfpt-registered", "rfpt-packaged"} <= set(checks.names())


def test_each_plugin_file_is_imported_once(fresh_registries, tmp_path):
    marker = tmp_path / "imports.txt"
    folder = write_files(
        tmp_path / "plugins",
        {
            "counted.py": f"""
            with open({str(marker)!r}, "a") as fh:
                fh.write("imported\\n")
        """,
        },
    )
    for _ in range(3):
        assert load_plugin_folders([folder]) == {}
    assert load_plugin_folders([str(folder)]) == {}  # the same folder named as a string
    assert marker.read_text() == "imported\n"


def test_broken_plugins_are_reported_by_name_and_the_others_still_load(fresh_registries, tmp_path):
    folder = write_files(
        tmp_path / "plugins",
        {
            "a_good.py": DOUBLE_TYPE,
            "broken.py": BROKEN_IMPORT,
            "syntax.py": "def oops(:\n    pass\n",
            "bad_register.py": """
            def register(task_types, checks):
                raise ValueError("register refused")
        """,
            "z_good.py": "CHECKS = {'rfpt-after-the-broken': lambda ctx: []}\n",
        },
    )
    failures = load_plugin_folders([folder])
    assert set(failures) == {"broken.py", "syntax.py", "bad_register.py"}
    assert failures["broken.py"] == (
        "ModuleNotFoundError: No module named 'rfpt_missing_dependency'"
    )
    assert failures["syntax.py"].startswith("SyntaxError: ")
    assert "syntax.py, line 1" in failures["syntax.py"]
    assert failures["bad_register.py"] == "ValueError: register refused"
    assert plugin_errors() == failures
    # The good ones, before and after the broken ones in name order, are there.
    assert registry.get("rfpt_double").name == "rfpt_double"
    assert checks.get("rfpt-after-the-broken")(None) == []
    # Nothing half-imported stays behind, and asking again reports the same (no re-import).
    assert not [m for m in sys.modules if m.startswith("reviewflow_plugin_broken_")]
    assert load_plugin_folders([folder]) == failures


def test_a_plugin_that_exits_at_import_is_reported_and_does_not_end_the_program(
    fresh_registries, tmp_path
):
    folder = write_files(
        tmp_path / "plugins",
        {
            "double.py": DOUBLE_TYPE,
            "script.py": "import sys\n\nsys.exit('usage: script.py FILE')\n",
            "z_after.py": "CHECKS = {'rfpt-after-the-script': lambda ctx: []}\n",
        },
    )
    try:
        failures = load_plugin_folders([folder])
    except SystemExit:
        pytest.fail("a plugin's sys.exit() at import ended the program")
    assert set(failures) == {"script.py"}
    assert "SystemExit" in failures["script.py"]
    assert "usage: script.py FILE" in failures["script.py"]
    assert registry.get("rfpt_double").name == "rfpt_double"
    assert checks.get("rfpt-after-the-script")(None) == []


def test_a_missing_folder_is_an_error_in_a_workflow_and_a_report_elsewhere(
    fresh_registries, tmp_path
):
    missing = tmp_path / "no-such-plugins"
    with pytest.raises(SpecError) as info:
        load_plugin_folders([missing], strict=True)
    assert info.value.field == "plugins"
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert load_plugin_folders([missing]) == {str(missing): "no such folder"}


# ------------------------------------------------------------------------ plugins of a workflow


def test_workflow_plugins_load_before_the_tasks_validate_and_then_run(fresh_registries, tmp_path):
    folder = write_files(tmp_path / "plugins", {"double.py": DOUBLE_TYPE})
    with pytest.raises(SpecError, match=r"rfpt_double needs params\.n"):
        validate_spec(
            {"name": "w", "plugins": [str(folder)], "tasks": {"a": {"type": "rfpt_double"}}}
        )
    spec = validate_spec(
        {
            "name": "w",
            "plugins": [str(folder)],
            "tasks": {
                "a": {"type": "rfpt_double", "params": {"n": 21}},
                "b": {"type": "shell", "run": ["true"], "needs": ["a"]},
            },
        }
    )
    assert spec.plugins == [str(folder)]
    store = MemoryStore()
    state = arun(Engine(store, runs_dir=tmp_path / "runs").run(spec, run_id="p1"))
    assert state == "succeeded"
    results = {t.name: t.result for t in store.get_tasks("p1")}
    assert results["a"] == '{"n": 42}'


def test_workflow_plugin_paths_are_relative_to_the_workflow_file(
    fresh_registries, tmp_path, monkeypatch
):
    project = tmp_path / "project"
    write_files(
        project,
        {
            "plugins/double.py": DOUBLE_TYPE,
            "wf.yaml": """
            name: w
            plugins: [plugins/]
            tasks:
              a: {type: rfpt_double, params: {n: 1}}
        """,
        },
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_workflow(Path("../project/wf.yaml"))
    assert spec.plugins == [str((project / "plugins").resolve())]
    assert spec.tasks["a"].type == "rfpt_double"
    # YAML text with no file: relative to the current directory.
    with pytest.raises(SpecError) as info:
        load_workflow_text("name: w\nplugins: [plugins/]\ntasks:\n  a: {type: shell, run: [x]}\n")
    assert str(elsewhere / "plugins") in str(info.value)
    monkeypatch.chdir(project)
    text = (project / "wf.yaml").read_text()
    assert load_workflow_text(text).plugins == [str((project / "plugins").resolve())]


def test_unknown_type_names_the_broken_plugin_that_would_have_provided_it(
    fresh_registries, tmp_path
):
    project = tmp_path / "project"
    write_files(
        project,
        {
            "plugins/double.py": DOUBLE_TYPE,
            "plugins/broken.py": BROKEN_IMPORT,
            "good.yaml": """
            name: w
            plugins: [plugins/]
            tasks:
              a: {type: rfpt_double, params: {n: 1}}
        """,
            "bad.yaml": """
            name: w
            plugins: [plugins/]
            tasks:
              a: {type: rfpt_double, params: {n: 1}}
              b: {type: rfpt_from_broken}
        """,
        },
    )
    assert load_workflow(project / "good.yaml").tasks["a"].type == "rfpt_double"
    with pytest.raises(SpecError) as info:
        load_workflow(project / "bad.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert "bad.yaml:5" in message and "task 'b'" in message
    assert "unknown task type 'rfpt_from_broken'" in message
    assert (
        "plugin broken.py failed to load: "
        "ModuleNotFoundError: No module named 'rfpt_missing_dependency'"
    ) in message
    assert "rfpt_double" in message  # the good plugin's type is among the known ones
