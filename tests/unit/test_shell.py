"""The shell task type: what a command's process inherits from the engine's environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reviewflow import run_sync
from reviewflow.errors import SpecError
from reviewflow.store import SQLiteStore
from rfhelpers import sh, workflow

DUMP = "python3 -c 'import json, os; print(json.dumps(dict(os.environ)))' > \"$OUT\""


def _env_of(tmp_path: Path, **body: object) -> dict[str, str]:
    """The environment a shell task saw, run through the public API on a SQLite file."""
    out = tmp_path / "env.json"
    spec = workflow({"dump": sh(DUMP, **{"env": {"OUT": str(out)}, **body})})
    store = SQLiteStore(tmp_path / "rf.db")
    try:
        _, state = run_sync(spec, store=store, runs_dir=tmp_path / "runs")
    finally:
        store.close()
    assert state == "succeeded"
    return json.loads(out.read_text())


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RF_TEST_API_TOKEN", "tok-123")
    monkeypatch.setenv("LC_RF_TEST", "fr_FR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-456")


def test_a_task_inherits_the_whole_environment_by_default(tmp_path: Path, secrets: None) -> None:
    env = _env_of(tmp_path)
    assert env["RF_TEST_API_TOKEN"] == "tok-123" and env["AWS_SECRET_ACCESS_KEY"] == "aws-456"
    assert env["REVIEWFLOW_TASK"] == "dump"


def test_inherit_env_passes_only_the_names_and_patterns_given(
    tmp_path: Path, secrets: None
) -> None:
    env = _env_of(tmp_path, inherit_env=["PATH", "LC_*"])
    assert "RF_TEST_API_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["LC_RF_TEST"] == "fr_FR" and env["PATH"]
    # The task's own env and the engine's markers are set whatever it inherits.
    assert env["OUT"].endswith("env.json")
    assert (env["REVIEWFLOW_TASK"], env["REVIEWFLOW_ATTEMPT"]) == ("dump", "1")


def test_an_empty_inherit_env_gives_a_clean_environment(tmp_path: Path, secrets: None) -> None:
    env = _env_of(tmp_path, inherit_env=[], run=["/usr/bin/env", "sh", "-c", DUMP])
    # (sh adds PWD, SHLVL and _; Python coerces a C locale with LC_CTYPE: PEP 538)
    assert set(env) - {"PWD", "SHLVL", "_", "LC_CTYPE"} == {
        "OUT",
        "REVIEWFLOW_RUN_ID",
        "REVIEWFLOW_TASK",
        "REVIEWFLOW_ATTEMPT",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inherit_env": ["A=B"]}, "inherit_env"),
        ({"inherit_env": [""]}, "inherit_env"),
        ({"inherit_env": "PATH"}, "inherit_env"),
        ({"type": "python", "call": "tasks_for_tests:noop", "inherit_env": ["PATH"]}, "shell"),
    ],
    ids=["equals-sign", "empty", "not-a-list", "python-task"],
)
def test_a_bad_inherit_env_is_refused_naming_the_field(body: dict, message: str) -> None:
    task = {**sh("true"), **body}
    if task.get("type") == "python":
        task.pop("run")
    with pytest.raises(SpecError) as caught:
        workflow({"t": task})
    assert "inherit_env" in str(caught.value) and message in str(caught.value)
