"""The Python API (reviewflow.api.Workflow): a workflow built in Python is the same spec as its
YAML twin, and the functions it decorates run in an engine run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from reviewflow import (
    MemoryStore,
    RunState,
    SpecError,
    SQLiteStore,
    Workflow,
    load_workflow_text,
    run_sync,
)


def summarize(ctx: Any) -> dict[str, Any]:
    """A module-level task: importable as `<this module>:summarize`."""
    return {"ok": True, "inputs": sorted(ctx.results), "pr": ctx.params.get("pr")}


def build_in_python() -> Workflow:
    wf = Workflow(
        "pr-review",
        max_concurrency=4,
        timeout="30m",
        failure_policy="continue",
        defaults={"timeout": "60s", "retry": {"max_retries": 2}},
        concurrency_limits={"gpu": 1},
    )
    wf.shell("lint", ["ruff", "check", "."], priority="high")
    wf.shell(
        "tests",
        ("pytest", "-q"),
        timeout="10m",
        retry={"max_retries": 1, "retry_on_exit_codes": [1]},
    )
    wf.shell("bench", "python bench.py --gpu", concurrency_key="gpu", delay="5s")
    wf.python("check", "json:dumps", needs=["lint"], priority=7)
    wf.task(needs=["lint", "tests"], params={"pr": "42"})(summarize)
    wf.shell("notify", ["./notify.sh", "failed"], on_failure=True)
    wf.add("cleanup", on_failure=True, type="shell", run=["rm", "-rf", "tmp"], needs=["notify"])
    return wf


YAML_TWIN = f"""\
    name: pr-review
    max_concurrency: 4
    timeout: 30m
    failure_policy: continue
    defaults: {{timeout: 60s, retry: {{max_retries: 2}}}}
    concurrency_limits: {{gpu: 1}}
    tasks:
      lint:    {{run: [ruff, check, .], priority: high}}
      tests:   {{type: shell, run: [pytest, -q], timeout: 10m,
                 retry: {{max_retries: 1, retry_on_exit_codes: [1]}}}}
      bench:   {{run: "python bench.py --gpu", concurrency_key: gpu, delay: 5s}}
      check:   {{call: "json:dumps", needs: [lint], priority: 7}}
      summarize: {{type: python, call: "{__name__}:summarize", needs: [lint, tests],
                   params: {{pr: "42"}}}}
    on_failure:
      notify:  {{run: [./notify.sh, failed]}}
      cleanup: {{type: shell, run: [rm, -rf, tmp], needs: [notify]}}
    """


def test_python_workflow_equals_its_yaml_twin() -> None:
    built = build_in_python().build()
    loaded = load_workflow_text(textwrap.dedent(YAML_TWIN), env={})
    assert built == loaded
    assert built.model_dump() == loaded.model_dump()
    assert built.model_dump_json() == loaded.model_dump_json()
    assert built.tasks["summarize"].call == f"{__name__}:summarize"
    assert list(built.on_failure) == ["notify", "cleanup"]
    assert built.tasks["bench"].run == ["python", "bench.py", "--gpu"]


def test_to_dict_is_what_a_yaml_file_holds() -> None:
    data = build_in_python().to_dict()
    assert data["name"] == "pr-review"
    assert data["tasks"]["tests"]["run"] == ["pytest", "-q"]  # tuples become lists
    assert set(data["on_failure"]) == {"notify", "cleanup"}


def test_a_difference_makes_the_specs_differ() -> None:
    loaded = load_workflow_text(textwrap.dedent(YAML_TWIN), env={})
    wf = build_in_python()
    wf.tasks["lint"]["priority"] = "low"
    assert wf.build() != loaded


def test_decorated_function_runs_in_an_engine_run(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    wf = Workflow("api-run")

    @wf.task
    def first(ctx: Any) -> int:
        seen.append((ctx.task, ctx.attempt))
        return 20

    @wf.task(name="second", needs=["first"], params={"add": 22})
    def add_up(ctx: Any) -> dict[str, Any]:
        seen.append((ctx.task, ctx.attempt))
        return {"total": ctx.results["first"] + ctx.params["add"], "meta": ctx.meta}

    wf.task(needs=["second"])(summarize)
    assert first.__name__ == "first"  # the decorator returns the function itself

    store = MemoryStore()
    run_id, state = run_sync(
        wf.build(),
        store=store,
        run_id="r1",
        meta={"pr": "7"},
        runs_dir=tmp_path / "runs",
        flush_interval=0.01,
    )
    assert (run_id, state) == ("r1", RunState.SUCCEEDED)
    assert seen == [("first", 1), ("second", 1)]
    results = {t.name: t.result for t in store.get_tasks(run_id)}
    assert results["first"] == "20"
    assert results["second"] == '{"total": 42, "meta": {"pr": "7"}}'
    assert results["summarize"] == '{"ok": true, "inputs": ["second"], "pr": null}'


def test_a_failing_decorated_function_fails_the_run(tmp_path: Path) -> None:
    wf = Workflow("api-fail")

    @wf.task(retry={"max_retries": 0})
    def broken(ctx: Any) -> None:
        raise ValueError("nope")

    store = MemoryStore()
    _, state = run_sync(wf.build(), store=store, runs_dir=tmp_path / "runs")
    assert state is RunState.FAILED
    (task,) = store.get_tasks(store.list_runs()[0].run_id)
    assert task.state == "failed"
    assert task.error == "ValueError: nope"


def test_duplicate_names_are_refused() -> None:
    wf = Workflow("dup").shell("a", ["true"])
    with pytest.raises(ValueError, match="duplicate"):
        wf.shell("a", ["false"])
    with pytest.raises(ValueError, match="duplicate"):
        wf.shell("a", ["false"], on_failure=True)


def test_build_validates_like_yaml() -> None:
    wf = Workflow("bad").shell("a", ["true"], needs=["b"]).shell("b", ["true"], needs=["a"])
    with pytest.raises(SpecError, match="cycle: "):
        wf.build()
    with pytest.raises(SpecError, match="unknown field"):
        Workflow("bad2").shell("a", ["true"], timout=3).build()


# ------------------------------------------------------------------ persisted like the CLI

ROOT = Path(__file__).resolve().parents[2]
RF = Path(sys.executable).parent / "reviewflow"


def readme_example() -> str:
    """The Python block of the README's "A workflow" section, verbatim."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("The same workflow in Python:") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: the venv's tools on PATH, no REVIEWFLOW_DB."""
    env = {k: v for k, v in os.environ.items() if k != "REVIEWFLOW_DB"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def run_cmd(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=user_env(**env), capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # real subprocesses: left out of the review's quick run
def test_the_readme_example_prints_its_run_and_status_lists_it(tmp_path: Path) -> None:
    (tmp_path / "review.py").write_text(readme_example(), encoding="utf-8")
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n", encoding="utf-8")

    ran = run_cmd([sys.executable, "review.py"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id, state = ran.stdout.split()
    assert state == "succeeded", ran.stdout
    assert (tmp_path / ".reviewflow" / "reviewflow.db").is_file()

    listed = run_cmd([str(RF), "status"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "pr-review" in listed.stdout and "succeeded" in listed.stdout
    as_json = run_cmd([str(RF), "status", "--json"], tmp_path)
    assert [r["run_id"] for r in json.loads(as_json.stdout)] == [run_id]
    shown = run_cmd([str(RF), "status", run_id, "--json"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["state"] == "succeeded"
    assert {t["name"]: t["state"] for t in doc["tasks"]} == {
        "lint": "succeeded",
        "tests": "succeeded",
        "summary": "succeeded",
    }


def test_run_sync_records_where_the_cli_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVIEWFLOW_DB", raising=False)
    wf = Workflow("persisted").shell("a", ["true"])
    run_id, state = run_sync(wf.build())
    assert state is RunState.SUCCEEDED
    with closing(SQLiteStore(tmp_path / ".reviewflow" / "reviewflow.db")) as store:
        record = store.get_run(run_id)
        assert record is not None and record.state == "succeeded"

    monkeypatch.setenv("REVIEWFLOW_DB", str(tmp_path / "elsewhere.db"))
    other, _ = run_sync(wf.build())
    with closing(SQLiteStore(tmp_path / "elsewhere.db")) as store:
        assert store.get_run(other) is not None


def test_memory_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVIEWFLOW_DB", raising=False)
    wf = Workflow("ephemeral").shell("a", ["true"])
    assert run_sync(wf.build(), store="memory")[1] is RunState.SUCCEEDED
    assert not (tmp_path / ".reviewflow" / "reviewflow.db").exists()


SCRIPT_DIES = """\
import os, signal
from reviewflow import Workflow, run_sync

wf = Workflow("dies")

@wf.task
def step(ctx):
    os.kill(os.getpid(), signal.SIGKILL)  # the script's process dies mid-run

run_sync(wf.build(), run_id="r1")
"""


@pytest.mark.slow  # real subprocesses: left out of the review's quick run
def test_a_script_task_resumed_elsewhere_fails_saying_why(tmp_path: Path) -> None:
    """`__main__` functions resolve only in the script's process: a resume from the CLI cannot
    import them, and says so instead of an obscure AttributeError or a traceback."""
    (tmp_path / "dies.py").write_text(SCRIPT_DIES, encoding="utf-8")
    died = run_cmd([sys.executable, "dies.py"], tmp_path)
    assert died.returncode == -signal.SIGKILL, died.stderr

    resumed = run_cmd([str(RF), "resume", "r1"], tmp_path)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "Traceback" not in resumed.stdout + resumed.stderr
    shown = run_cmd([str(RF), "status", "r1", "--json"], tmp_path)
    (task,) = json.loads(shown.stdout)["tasks"]
    assert task["state"] == "failed"
    assert "cannot call '__main__:step' here" in task["error"]
    assert "importable module" in task["error"]
