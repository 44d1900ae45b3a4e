"""Which module registers each command (`cli/commands.py`): `reviewflow <command>` loads that
module alone, so every command must be mapped to the module that registers it and must still
answer in a process where no other command module is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import sh, write_workflow


def test_each_command_is_mapped_to_the_module_that_registers_it() -> None:
    """A command loads only its module: a command added to a module but not to COMMANDS (or
    mapped to the wrong module) would be unknown to `reviewflow <it>`."""
    from reviewflow.cli.commands import COMMANDS, load

    app = load()
    found = {
        c.name or c.callback.__name__: c.callback.__module__.rsplit(".", 1)[-1]
        for c in app.registered_commands
        if c.callback is not None
    }
    for group in app.registered_groups:
        callbacks = [c.callback for c in group.typer_instance.registered_commands if c.callback]
        found[group.name or ""] = callbacks[0].__module__.rsplit(".", 1)[-1]
    assert found == COMMANDS


@pytest.mark.parametrize(
    "command", ["validate", "graph", "events", "templates", "workers", "schedule", "db"]
)
def test_a_command_started_alone_still_answers(tmp_path: Path, command: str) -> None:
    """Each command works in a process where only its module is registered."""
    write_workflow(tmp_path / "wf.yaml", {"a": sh("true")})
    args = {
        "validate": ["wf.yaml"],
        "graph": ["wf.yaml"],
        "events": ["nope", "--db", "x.db"],
        "templates": ["list"],
        "workers": ["--db", "x.db"],
        "schedule": ["list", "--db", "x.db"],
        "db": ["--help"],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "reviewflow", command, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr
    assert "No such command" not in done.stderr
    assert done.returncode == (2 if command in ("events", "workers", "schedule") else 0), (
        done.stderr
    )


def test_help_lists_every_command() -> None:
    """No command named: every module is loaded, so `reviewflow --help` lists all of them."""
    from reviewflow.cli.commands import COMMANDS

    done = subprocess.run(
        [sys.executable, "-m", "reviewflow", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed


def test_a_name_that_is_not_a_command_is_typers_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reviewflow", "nope"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "No such command 'nope'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
