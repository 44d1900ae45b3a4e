"""What every command shares (`cli/common.py`): errors as one plain line (exit 2 for bad input,
never console markup, never a traceback), --db (a file that is not a database, a folder that
cannot hold one, a typo that must not create one, REVIEWFLOW_DB), --meta, --log-format,
--version."""

from __future__ import annotations

import json

import pytest
import yaml
from clihelpers import Cli, one_line_error, query, review_workflow

from reviewflow import __version__


def test_error_text_is_printed_verbatim(cli: Cli) -> None:
    """Messages are plain text: brackets in them are not console markup to interpret."""
    (cli.cwd / "wf.yaml").write_text("name: wf\ntasks:\n  a: {type: shell}\n")
    result = cli("validate", "wf.yaml")
    assert result.exit_code == 2
    assert "missing `run: [command, args...]`" in one_line_error(result.stderr)


@pytest.mark.parametrize("needs", ["[/x]", "[bold]", "[/]"])
def test_markup_like_names_in_errors_do_not_crash(cli: Cli, needs: str) -> None:
    (cli.cwd / "wf.yaml").write_text(
        yaml.safe_dump({"name": "wf", "tasks": {"a": {"run": ["x"], "needs": [needs]}}})
    )
    result = cli("validate", "wf.yaml")
    assert result.exit_code == 2
    assert f"unknown dependency '{needs}'" in one_line_error(result.stderr)


@pytest.mark.parametrize("bad", ["novalue", "=42", " =1"])
def test_bad_meta_is_bad_input(cli: Cli, bad: str) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", cli.db, "--meta", bad)
    assert result.exit_code == 2
    assert "bad --meta" in one_line_error(result.stderr)
    assert not (cli.cwd / "done.txt").exists()


def test_log_format_json_emits_json_lines_on_stderr(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", cli.db, "--run-id", "lg", "--log-format", "json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    assert all({"event", "level", "timestamp"} <= set(rec) for rec in lines)
    names = [rec["event"] for rec in lines]
    assert names[0] == "run.start"
    assert names[-1] == "run.end"
    assert lines[-1]["state"] == "succeeded"
    done = {(r["task"], r["to_state"]) for r in lines if r["event"] == "transition"}
    assert {("lint", "succeeded"), ("tests", "succeeded"), ("summary", "succeeded")} <= done
    assert not any(line.startswith("{") for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "r"],
        ["events", "r"],
        ["run", "wf.yaml"],
        ["resume", "r"],
        ["graph", "r"],
    ],
)
def test_db_that_is_not_a_database_is_bad_input(cli: Cli, command: list[str]) -> None:
    """`--db wf.yaml` (an easy slip): a one-line error, exit 2, and the file left alone."""
    review_workflow(cli.cwd / "wf.yaml")
    before = (cli.cwd / "wf.yaml").read_bytes()
    result = cli(*command, "--db", "wf.yaml")
    assert result.exit_code == 2, result.output
    assert "wf.yaml" in one_line_error(result.stderr)
    assert (cli.cwd / "wf.yaml").read_bytes() == before
    assert not (cli.cwd / "done.txt").exists()


def test_db_that_cannot_be_created_is_bad_input(cli: Cli) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    result = cli("run", "wf.yaml", "--db", "wf.yaml/sub/rf.db")
    assert result.exit_code == 2
    assert "cannot open database" in one_line_error(result.stderr)


@pytest.mark.parametrize("command", ["events", "resume", "cancel", "pause", "status"])
def test_commands_on_a_missing_database_do_not_create_one(cli: Cli, command: str) -> None:
    """A mistyped --db is reported (as `status` does), not silently created empty."""
    result = cli(command, "some-run", "--db", "typo/rf.db")
    assert result.exit_code == 2
    one_line_error(result.stderr)
    assert not (cli.cwd / "typo").exists()


def test_db_from_the_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    review_workflow(cli.cwd / "wf.yaml")
    monkeypatch.setenv("REVIEWFLOW_DB", str(cli.cwd / "env.db"))
    assert cli("run", "wf.yaml", "--run-id", "e").exit_code == 0
    assert query(cli.cwd / "env.db", "SELECT run_id, state FROM runs") == [("e", "succeeded")]


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"reviewflow {__version__}"
