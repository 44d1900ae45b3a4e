"""The coverage map recorded in the background (`record_map`), on throwaway repositories: real
git, real pytest under real coverage, a real detached recorder process.

What a user relies on: a first review runs the whole suite the cheap way and says the map is
being recorded for the next review; the recorder leaves a map the next review uses; a map is
never stored for code that changed while the suite ran; only one recorder works on a map at a
time; in CI nothing is recorded (the work tree is thrown away with the job).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gitrepo import branch_with, commit, make_repo, write

from reviewflow.errors import TaskFailed
from reviewflow.owners import pid_alive
from reviewflow.review.change import collect_change
from reviewflow.review.checks import testmap, testmap_record
from reviewflow.review.checks import tests as tests_check
from reviewflow.review.checks.base import CheckContext
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
FILES = {
    "calc.py": CALC,
    "tests/test_add.py": "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    "tests/test_sub.py": "from calc import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n",
    "other.py": "def mul(a, b):\n    return a * b\n",
    "tests/test_other.py": "from other import mul\n\n\n"
    "def test_mul():\n    assert mul(2, 3) == 6\n",
}
SUITE = ["pytest", "-q"]
WAIT = 180.0  # a bound on a hung recorder, not a timing: the loop ends when it reports


def run(root: Path, **options: object) -> CheckResult:
    opts = {"impacted": "map", "parallel": False, **options}
    ctx = CheckContext(check="tests", root=root, change=collect_change(root), options=opts)
    return asyncio.run(tests_check.tests(ctx))


def finished(root: Path) -> dict[str, object]:
    """The recorder's final status, once it wrote one."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        doc = testmap_record.status(root, SUITE)
        if doc is not None and doc.get("finished_at") is not None:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"the recorder did not finish: {testmap_record.status(root, SUITE)}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo", FILES)
    branch_with(root, {"calc.py": CALC.replace("return a + b", "return b + a")})
    return root


def test_the_first_review_runs_cheaply_and_the_recorder_leaves_a_map_the_next_one_uses(
    repo: Path,
) -> None:
    first = run(repo, record_map="background")
    assert first.metrics["test_selection"] == (
        "whole suite: no coverage map yet (recording one in the background for the next review)"
    )
    assert first.metrics["tests_passed"] == 3
    # The check's own run measured the changed file only, not per test: it left no map.
    doc = finished(repo)
    assert doc["result"] == "recorded"
    stored = json.loads(testmap.map_path(repo, SUITE).read_text(encoding="utf-8"))
    assert {stored["tests"][i] for i in stored["files"]["calc.py"]["tests"]} == {
        "tests/test_add.py::test_add",
        "tests/test_sub.py::test_sub",
    }
    # A re-push with a bug in sub(): the map picks calc's two tests, and the bug is caught.
    write(repo, {"calc.py": CALC.replace("return a - b", "return a + b")})
    commit(repo, "re-push")
    second = run(repo, record_map="background")
    assert second.metrics["test_selection"].startswith("2 of 3 tests: coverage map of ")
    assert second.metrics["tests_failed"] == 1


def test_a_review_started_with_a_relative_pythonpath_gets_a_map_it_can_use(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `PYTHONPATH=site python -m reviewflow review <repo>` from another folder (a checkout used
    # without pip): this process's sys.path holds <here>/site, with a distribution in it. The
    # recorder must resolve `site` the same way, or it cannot import what this process did and
    # its map's environment() differs from the one the next review computes.
    here = tmp_path / "here"
    (here / "site" / "extra-1.0.dist-info").mkdir(parents=True)
    monkeypatch.chdir(here)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["site", os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(here / "site"))
    run(repo, record_map="background")
    assert finished(repo)["result"] == "recorded"
    assert (
        json.loads(testmap.map_path(repo, SUITE).read_text(encoding="utf-8"))["environment"]
        == testmap.environment()
    )
    write(repo, {"calc.py": CALC.replace("return a - b", "return b - a")})
    commit(repo, "re-push")
    second = run(repo, record_map="background")
    assert second.metrics["test_selection"].startswith("2 of 3 tests: coverage map of ")


def test_a_map_of_code_that_changed_while_the_suite_ran_is_not_stored(repo: Path) -> None:
    # The recorder's run (and only it: REVIEWFLOW_TESTMAP_OUT is its plugin's variable) waits
    # in a test until the test below has edited a tracked file: an edit during the recording.
    barrier = repo.parent / "barrier"
    write(
        repo,
        {
            "tests/test_wait.py": "import os, pathlib, time\n\n\n"
            "def test_wait():\n"
            "    if not os.environ.get('REVIEWFLOW_TESTMAP_OUT'):\n"
            "        return\n"
            f"    pathlib.Path({str(barrier)!r} + '.started').touch()\n"
            "    for _ in range(3000):\n"
            f"        if pathlib.Path({str(barrier)!r} + '.go').exists():\n"
            "            return\n"
            "        time.sleep(0.01)\n"
        },
    )
    commit(repo, "a test that waits for the edit")
    run(repo, record_map="background")
    started = Path(f"{barrier}.started")
    deadline = time.monotonic() + WAIT
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    write(repo, {"calc.py": CALC + "\n\ndef mul(a, b):\n    return a * b\n"})
    Path(f"{barrier}.go").touch()
    assert finished(repo)["result"] == "the work tree changed while the suite ran: map not stored"
    assert not testmap.map_path(repo, SUITE).exists()


def test_one_recorder_at_a_time(repo: Path) -> None:
    status = testmap_record.status_path(repo, SUITE)
    status.parent.mkdir(parents=True)
    request = {
        "root": str(repo),
        "coverage": [sys.executable, "-m", "coverage"],
        "command": SUITE,
        "run": [*SUITE, "-p", "no:cacheprovider"],
        "workers": 1,
        "timeout": WAIT,
    }

    def recorder() -> int:
        path = status.parent / "request.json"
        path.write_text(json.dumps(request), encoding="utf-8")
        argv = [sys.executable, "-m", testmap_record.MODULE, str(path)]
        done = subprocess.run(argv, cwd=repo, timeout=WAIT, check=False)
        assert not path.exists()  # the request is consumed either way
        return done.returncode

    with open(status.with_suffix(".lock"), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert recorder() == 0
        assert testmap_record.status(repo, SUITE) is None  # it left at once
    assert recorder() == 0
    assert testmap_record.status(repo, SUITE)["result"] == "recorded"  # type: ignore[index]
    assert testmap.map_path(repo, SUITE).exists()


def test_off_records_nothing(repo: Path) -> None:
    result = run(repo, record_map="off")
    assert result.metrics["test_selection"] == "whole suite: no coverage map yet"
    assert not testmap.map_path(repo, SUITE).parent.exists()


def test_auto_is_off_in_ci_background_elsewhere_and_the_variable_decides_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(testmap_record.ENV_MODE, raising=False)
    monkeypatch.setenv("CI", "true")
    assert testmap_record.mode("auto") == "off"
    monkeypatch.delenv("CI")
    assert testmap_record.mode("auto") == "background"
    monkeypatch.setenv("CI", "false")
    assert testmap_record.mode("auto") == "background"
    monkeypatch.setenv(testmap_record.ENV_MODE, "inline")
    assert testmap_record.mode("auto") == "inline"
    assert testmap_record.mode("off") == "off"  # the template's own choice wins
    with pytest.raises(TaskFailed, match="option 'record_map' must be auto, background"):
        testmap_record.mode("later")


def test_a_review_stops_a_recording_running_in_its_work_tree_first(repo: Path) -> None:
    # The recorder's suite (and only it) parks in a test that never finishes on its own.
    pidfile = repo.parent / "recorder-test.pid"
    write(
        repo,
        {
            "tests/test_park.py": "import os, pathlib, time\n\n\n"
            "def test_park():\n"
            "    if not os.environ.get('REVIEWFLOW_TESTMAP_OUT'):\n"
            "        return\n"
            f"    pathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()))\n"
            "    time.sleep(600)\n"
        },
    )
    commit(repo, "a test that parks the recorder")
    run(repo, record_map="background")
    deadline = time.monotonic() + WAIT
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    parked = int(pidfile.read_text())
    # The next review runs its own suite only once the recording (and its suite) is gone.
    second = run(repo, record_map="off")
    assert second.metrics["tests_passed"] == 4
    doc = testmap_record.status(repo, SUITE)
    assert doc is not None
    assert doc["result"] == "stopped: a review ran the suite in this work tree"
    assert not pid_alive(parked)
    assert not testmap.map_path(repo, SUITE).exists()
