"""What every check runs its tools through (`review/checks/base.py`): an argv list, never a
shell; output and exit code logged (masked) for the attempt; the check's timeout reported as
the check's, once, without a retry; a cancelled check leaves no process of its tool behind;
a missing tool is a ToolMissing naming it. Real subprocesses on a hand-made Change."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from gitrepo import change_of

from reviewflow.errors import TaskFailed
from reviewflow.review.change import ChangedFile
from reviewflow.review.checks.base import CheckContext, ToolMissing, tool_bound
from rfhelpers import process_gone

PY = sys.executable


def context(root: Path, **fields: object) -> CheckContext:
    change = change_of(
        root,
        [
            ChangedFile(path="a.py", status="modified", lines=[(1, 2)]),
            ChangedFile(path="b.md", status="added", lines=[(1, 1)]),
            ChangedFile(path="gone.py", status="deleted"),
        ],
    )
    return CheckContext(check="probe", root=root, change=change, **fields)  # type: ignore[arg-type]


def test_the_changed_files_a_check_sees_are_the_present_ones(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    assert ctx.files() == ["a.py", "b.md"]
    assert ctx.files(".py") == ["a.py"]


def test_a_tool_gets_its_arguments_as_written_never_through_a_shell(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    hostile = "$(touch pwned); echo `id` | cat"
    code = "import sys; print(sys.argv[1]); sys.stderr.write('warn\\n'); sys.exit(3)"
    result = asyncio.run(ctx.run_tool([PY, "-c", code, hostile]))
    assert (result.returncode, result.stdout, result.stderr) == (3, hostile + "\n", "warn\n")
    assert list(tmp_path.iterdir()) == []  # ran in the repository; nothing was touched


def test_what_a_tool_prints_is_logged_masked_with_its_command_and_exit_code(
    tmp_path: Path,
) -> None:
    log = tmp_path / "logs" / "probe.1.log"
    ctx = context(tmp_path, log_path=log, mask=lambda text: text.replace("hunter22", "****"))
    asyncio.run(ctx.run_tool([PY, "-c", "print('password=hunter22')"]))
    asyncio.run(ctx.run_tool([PY, "-c", "import sys; sys.exit(1)"]))
    text = log.read_text(encoding="utf-8")
    assert "hunter22" not in text
    assert text.count("$ " + PY) == 2
    assert "password=****\n[exit 0]\n" in text and text.endswith("[exit 1]\n")


def test_a_tools_tmpdir_is_the_attempts_own_folder(tmp_path: Path) -> None:
    tmp_dir = tmp_path / "attempt" / "tmp"
    ctx = context(tmp_path, tmp_dir=tmp_dir)
    result = asyncio.run(ctx.run_tool([PY, "-c", "import tempfile; print(tempfile.gettempdir())"]))
    assert result.stdout.strip() == str(tmp_dir) and tmp_dir.is_dir()


def test_the_checks_timeout_fails_it_once_naming_the_setting(tmp_path: Path) -> None:
    ctx = context(tmp_path, timeout=0.5)
    with pytest.raises(TaskFailed) as caught:
        asyncio.run(ctx.run_tool([PY, "-c", "import time; time.sleep(600)"]))
    assert caught.value.retryable is False
    assert str(caught.value).endswith(
        "did not finish within 0.5s (the timeout of check 'probe': raise it in the template)"
    )


def test_a_callers_own_bound_is_left_to_the_caller(tmp_path: Path) -> None:
    ctx = context(tmp_path, timeout=600)
    with pytest.raises(TimeoutError):
        asyncio.run(ctx.run_tool([PY, "-c", "import time; time.sleep(600)"], timeout=0.2))


def test_a_cancelled_check_leaves_no_process_of_its_tool_behind(tmp_path: Path) -> None:
    """The tool's children too: a test suite's servers must not outlive the review."""
    ready = tmp_path / "grandchild.pid"
    grandchild = (
        "import os, pathlib, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(ready)!r}).write_text(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    started: list[int] = []
    ctx = context(tmp_path, on_process=started.append)

    async def scenario() -> None:
        task = asyncio.ensure_future(ctx.run_tool([PY, "-c", grandchild]))
        while not (ready.exists() and ready.read_text()):  # progress, not a time window
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    pid = int(ready.read_text())
    assert len(started) == 1
    for _ in range(6000):  # SIGKILL is sent: the child is gone (or a zombie) once delivered
        if process_gone(pid):
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the tool's child outlived the cancelled check")


def test_a_missing_tool_is_named(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    with pytest.raises(ToolMissing) as caught:
        asyncio.run(ctx.run_tool(["rf-no-such-tool", "--version"]))
    assert caught.value.tool == "rf-no-such-tool"
    with pytest.raises(ToolMissing, match="rf-no-such-tool is not installed: get it"):
        ctx.executable("rf-no-such-tool", hint="get it")
    with pytest.raises(ToolMissing) as module:
        ctx.python_module("rf_no_such_module", "rf-tool")
    assert module.value.tool == "rf-tool"
    assert ctx.python_module("json") == [PY, "-m", "json"]


def test_a_program_next_to_reviewflows_python_comes_before_path(tmp_path: Path) -> None:
    """What `pip install 'reviewflow[review]'` installed is what runs, whatever PATH says."""
    ctx = context(tmp_path)
    name = Path(PY).name
    assert ctx.executable(name) == str(Path(PY).parent / name)


@pytest.mark.parametrize(
    ("task", "tools"), [(None, None), (0, None), (5, 4.75), (60, 57.0), (600, 590.0)]
)
def test_tools_are_bounded_a_little_under_the_checks_timeout(
    task: float | None, tools: float | None
) -> None:
    """So the check, not the engine, reports a tool that hangs."""
    assert tool_bound(task) == tools
