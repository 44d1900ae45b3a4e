"""The tests check's coverage map, recorded in the background after the review has its verdict.

Recording the map means running the whole suite with every line of the repository measured per
test, subprocesses included: on this repository about 1.7x a plain run under coverage. Doing it
inside the review made a first review slower than running the tools by hand, for a map only the
*next* review uses. So a review that has to run the whole suite runs it the cheap way (coverage
of the changed files only) and starts a detached, low-priority process that runs the suite once
more to record the map, while the user reads the verdict.

`record_map` (option of the tests check) says where the map is made:

    auto        background, except in CI (`CI` set to true/1: the job's work tree, and so the
                map, is thrown away when it ends), where it is off. REVIEWFLOW_RECORD_MAP
                (inline, background or off) overrides what auto means.
    background  a detached process (nice 10) after the suite ran; one at a time per test
                command (a lock); its state in `.reviewflow/cache/testmap/<command>.recording.json`.
    inline      in the check's own run of the suite (the review takes longer; the map exists
                when it ends).
    off         never.

The recorder keeps the map honest: it notes the commit and the uncommitted files' content before
the run and throws the map away if they changed while the suite ran (the map would describe
code that is no longer there). Its output is not kept (it is the project's own test output;
the review already reported on the same run).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ...errors import TaskFailed
from ...owners import pid_alive
from ...statedir import make_dirs
from . import testmap

MODES = ("auto", "background", "inline", "off")
ENV_MODE = "REVIEWFLOW_RECORD_MAP"
MODULE = "reviewflow.review.checks.testmap_record"
NICE = 10
DEFAULT_TIMEOUT = 3600.0
STARTING = 60.0
"""Seconds a requested recording counts as on its way before its process reports."""


def mode(option: Any) -> str:
    """`inline`, `background` or `off`: what `record_map` (default auto) means here."""
    if option not in MODES:
        raise TaskFailed(
            "tests: option 'record_map' must be auto, background, inline or off", retryable=False
        )
    if option != "auto":
        return str(option)
    forced = os.environ.get(ENV_MODE, "").strip().lower()
    if forced in ("background", "inline", "off"):
        return forced
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return "off"
    return "background"


def status_path(root: Path, command: list[str]) -> Path:
    return testmap.map_path(root, command).with_suffix(".recording.json")


def status(root: Path, command: list[str]) -> dict[str, Any] | None:
    """The last background recording of `command`'s map: pid, started_at, and once it ended
    finished_at and result (`recorded`, or why not)."""
    try:
        doc = json.loads(status_path(root, command).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def running(root: Path, command: list[str]) -> bool:
    return _running(status(root, command))


def _running(doc: dict[str, Any] | None) -> bool:
    if doc is None or doc.get("finished_at") is not None:
        return False
    pid = doc.get("pid")
    if pid is None:  # requested, its process not started yet (or it never will)
        return time.time() - float(doc.get("requested_at") or 0) < STARTING
    return isinstance(pid, int) and pid > 0 and pid_alive(pid)


def start(
    root: Path,
    *,
    coverage: list[str],
    command: list[str],
    run: list[str],
    workers: int,
    timeout: float | None,
) -> str:
    """Start the recorder for the suite `command` (the map's key), which runs `run` (the
    command with the check's extra arguments). Returns what the summary says about it."""
    if running(root, command):
        return "one is being recorded in the background"
    folder = testmap.map_path(root, command).parent
    make_dirs(folder)
    request = {
        "root": str(root),
        "coverage": coverage,
        "command": command,
        "run": run,
        "workers": workers,
        "timeout": timeout or DEFAULT_TIMEOUT,
    }
    # Written before the process starts, so whoever looks right after the review (the next
    # review, a benchmark waiting for the map) sees a recording on its way.
    testmap.write_json(
        status_path(root, command), {"pid": None, "requested_at": time.time(), "finished_at": None}
    )
    fd, path = tempfile.mkstemp(prefix=".record-", suffix=".json", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(request, fh)
    try:
        # The recorder starts where this process did: a relative PYTHONPATH (`PYTHONPATH=src
        # python -m reviewflow review ../project`, a checkout used without pip) then finds
        # the same reviewflow, and the map's environment() sees the sys.path a later review
        # compares it with. From the repository, the recorder could not import reviewflow
        # at all (nothing recorded, ever) or hashed another sys.path (a map never used).
        here = os.getcwd()
    except OSError:  # this process's folder was removed: nothing relative to resolve
        here = str(root)
    try:
        # Through sh's `&`: sh exits at once (waited for here: no zombie, no running child
        # left to this process) and the recorder, in a session of its own, outlives the
        # review and its process group's signals. Arguments travel as "$@", never parsed.
        subprocess.run(
            ["/bin/sh", "-c", '"$@" &', "sh", sys.executable, "-m", MODULE, path],
            cwd=here,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            status_path(root, command).unlink()
        return f"none recorded: {getattr(exc, 'strerror', None) or exc}"
    return "recording one in the background for the next review"


_suite: list[subprocess.Popen[bytes]] = []
"""The suite the recorder is running (at most one), for a timeout or a stop to end."""


def _kill_suite() -> None:
    for proc in _suite:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            proc.wait(timeout=30)


class _Stopped(Exception):
    """SIGTERM from stop(): a review needs the work tree."""


def _on_term(signum: int, frame: Any) -> None:
    raise _Stopped


def stop(root: Path, command: list[str], wait: float = 30.0) -> bool:
    """End a background recording of `command`'s map (one starting up included) before a
    review runs the suite in the same work tree: two suites at once in one tree can fail
    each other (ports, files), and a review's verdict matters more than the map, which the
    review records again if it needs one. True if one was stopped."""
    deadline = time.monotonic() + wait
    stopped = False
    while time.monotonic() < deadline:
        doc = status(root, command)
        if doc is None or not _running(doc):
            return stopped
        pid = doc.get("pid")
        if isinstance(pid, int) and pid > 0:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
                stopped = True
        time.sleep(0.05)
    return stopped


def record(request: dict[str, Any]) -> str:
    """Run the suite per test and store the map; what happened, in a few words."""
    from .tests import _ENV, suite_argv  # the check's own way of running the suite

    root = Path(request["root"])
    command: list[str] = list(request["command"])
    coverage: list[str] = list(request["coverage"])
    before = testmap.tree_state(root)
    with tempfile.TemporaryDirectory(prefix="reviewflow-testmap-") as tmp_name:
        tmp = Path(tmp_name)
        argv, env = suite_argv(
            coverage, tmp, root, list(request["run"]), [], int(request["workers"]), record=True
        )
        tools_tmp = tmp / "tmp"
        tools_tmp.mkdir()
        full = {**os.environ, **env, "TMPDIR": str(tools_tmp), "TEMP": str(tools_tmp)}
        full["TMP"] = str(tools_tmp)
        # A session of its own: a timeout or a stop() ends the whole suite (pytest-xdist's
        # workers, the tests' own subprocesses), not only its first process.
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=full,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _suite.append(proc)
        try:
            returncode = proc.wait(timeout=float(request.get("timeout") or DEFAULT_TIMEOUT))
        except subprocess.TimeoutExpired:
            _kill_suite()
            return "timed out"
        except BaseException:  # stopped (SIGTERM): the suite goes with the recorder
            _kill_suite()
            raise
        finally:
            _suite.clear()
        if returncode not in (0, 1):
            return f"the tests could not run (exit {returncode})"
        data = tmp / ".coverage"
        subprocess.run(
            [*coverage, "combine", "--append", f"--data-file={data}"],
            cwd=root,
            env={**os.environ, **_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if not testmap.same_tree(before, testmap.tree_state(root)):
            return "the work tree changed while the suite ran: map not stored"
        built = testmap.build(root, testmap.recorder(tmp, data, root), command)
    return "recorded" if built is not None else "nothing usable was recorded"


def main(argv: list[str]) -> int:
    """`python -m reviewflow.review.checks.testmap_record <request.json>` (started by start())."""
    request_path = Path(argv[0])
    try:
        request = json.loads(request_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 2
    finally:
        with contextlib.suppress(OSError):
            request_path.unlink()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    root = Path(request["root"])
    command: list[str] = list(request["command"])
    state = status_path(root, command)
    lock_path = state.with_suffix(".lock")
    with open(lock_path, "a+") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX: no lock, still one at a time mostly
            pass
        except OSError:
            return 0  # another recorder of this map is at work
        asked = (status(root, command) or {}).get("requested_at")
        doc: dict[str, Any] = {
            "pid": os.getpid(),
            "requested_at": asked,
            "started_at": time.time(),
            "finished_at": None,
        }
        testmap.write_json(state, doc)
        signal.signal(signal.SIGTERM, _on_term)
        try:
            result = record(request)
        except _Stopped:
            _kill_suite()
            result = "stopped: a review ran the suite in this work tree"
        except Exception as exc:  # the map is a cache: say why in the status, never raise
            result = f"failed: {type(exc).__name__}: {exc}"
        doc.update(finished_at=time.time(), result=result)
        testmap.write_json(state, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
