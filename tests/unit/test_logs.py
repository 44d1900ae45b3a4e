"""Structured logging (`logs.py`) as a command's user sees it on stderr: JSON lines when asked
(and by default off a terminal), levels below the threshold left out, structlog imported only
when something is logged, and lines written to whatever stderr is at the moment (the progress
view swaps it while its table is on screen).

Each test runs in a fresh interpreter: the logging configuration is global to a process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any


def stderr_of(code: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from reviewflow.logs import configure_logging, enabled, log\n" + textwrap.dedent(code),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines()]


def test_json_lines_carry_the_event_its_fields_level_and_utc_time() -> None:
    [line] = lines(
        stderr_of('configure_logging("json", "info")\nlog.info("run.start", run_id="r1")')
    )
    assert line["event"] == "run.start" and line["run_id"] == "r1" and line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_auto_writes_json_when_stderr_is_not_a_terminal() -> None:
    [line] = lines(stderr_of('configure_logging("auto", "info")\nlog.info("hello")'))
    assert line["event"] == "hello"


def test_human_lines_are_not_json() -> None:
    stderr = stderr_of('configure_logging("human", "info")\nlog.info("hello", n=1)')
    assert "hello" in stderr and "n=1" in stderr and not stderr.startswith("{")


def test_levels_below_the_threshold_are_left_out_and_enabled_says_so() -> None:
    stderr = stderr_of(
        """
        configure_logging("json", "warning")
        assert not enabled("info") and not enabled("debug")
        assert enabled("warning") and enabled("error")
        log.info("quiet")
        log.warning("loud")
        """
    )
    assert [line["event"] for line in lines(stderr)] == ["loud"]


def test_configuring_again_applies_at_once_once_structlog_is_loaded() -> None:
    stderr = stderr_of(
        """
        configure_logging("json", "info")
        log.info("first")
        configure_logging("json", "error")
        log.warning("dropped")
        log.error("kept")
        """
    )
    assert [line["event"] for line in lines(stderr)] == ["first", "kept"]


def test_structlog_is_imported_only_when_something_is_logged() -> None:
    """`--version`, `status` and `pause` log nothing and must not pay structlog's import."""
    stderr_of(
        """
        import sys
        configure_logging("json", "info")
        assert "structlog" not in sys.modules
        log.info("now")
        assert "structlog" in sys.modules
        """
    )


def test_lines_go_to_the_stderr_of_the_moment() -> None:
    stderr = stderr_of(
        """
        import io, sys
        configure_logging("json", "info")
        log.info("before")
        real, sys.stderr = sys.stderr, io.StringIO()
        log.info("swapped")
        swapped, sys.stderr = sys.stderr.getvalue(), real
        assert '"swapped"' in swapped and '"before"' not in swapped, swapped
        log.info("after")
        """
    )
    assert [line["event"] for line in lines(stderr)] == ["before", "after"]
