"""pytest plugin of the tests check's coverage map: which test executed which lines.

Loaded with `-p reviewflow.review.testmap_plugin` when the tests check runs the whole suite
under coverage to (re)build its map (see checks/testmap.py). It names coverage's context after
what is running:

- a test (its setup, call and teardown): the test's node id;
- the setup of a fixture shared by several tests (class, module, package or session scope):
  `fixture:<name>`, so what such a fixture executes counts for every test that uses it, not
  only for the first one that happened to set it up;
- anything else (collection, imports): the empty context, "import time" to the map.

Python subprocesses a test starts are measured too, under the same name: coverage's own
start-up hook (the `.pth` file coverage installs) reads `COVERAGE_PROCESS_START`, which points
at a config whose `context` is `${REVIEWFLOW_TESTMAP_TEST}`, set here while the test runs.

At the end it writes which fixtures each test used, and every collected test, to
`$REVIEWFLOW_TESTMAP_OUT/tests-<pid>.json` (one file per process: pytest-xdist's workers each
write theirs).

Nothing here imports reviewflow or anything heavy: it runs inside the project's test process.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENV_OUT = "REVIEWFLOW_TESTMAP_OUT"
ENV_RC = "REVIEWFLOW_TESTMAP_RC"
ENV_TEST = "REVIEWFLOW_TESTMAP_TEST"
FIXTURE = "fixture:"

_fixtures: dict[str, list[str]] = {}
_current: list[str] = [""]


def _coverage() -> Any:
    try:
        from coverage import Coverage
    except ImportError:  # pragma: no cover - the check runs under coverage
        return None
    return Coverage.current()


def _switch(name: str) -> None:
    cov = _coverage()
    if cov is not None:
        cov.switch_context(name)
    os.environ[ENV_TEST] = name


_SAVED: dict[str, str | None] = {}
_CHILD_VARS = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG", "COVERAGE_FILE")


def _subprocesses(on: bool) -> None:
    """Point coverage's start-up hook in child processes at the map's config while a test
    runs, and put back what was there after. COVERAGE_FILE (pytest-cov sets it) would
    override the config's data file: the children's line data must stay apart from the
    test process's (which may measure branches)."""
    rc = os.environ.get(ENV_RC)
    if not rc:
        return
    if on:
        _SAVED.update({k: os.environ.get(k) for k in _CHILD_VARS})
        os.environ.pop("COVERAGE_PROCESS_CONFIG", None)
        os.environ["COVERAGE_PROCESS_START"] = rc
        os.environ["COVERAGE_FILE"] = str(Path(rc).parent / "subprocess.coverage")
        return
    for key in _CHILD_VARS:
        value = _SAVED.pop(key, None)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    infos = getattr(item, "_fixtureinfo", None)
    defs = getattr(infos, "name2fixturedefs", {}) or {}
    _fixtures[item.nodeid] = sorted(
        name
        for name in getattr(item, "fixturenames", ())
        if any(getattr(d, "scope", "function") != "function" for d in defs.get(name, ()))
    )
    _current[0] = item.nodeid
    _subprocesses(True)
    _switch(item.nodeid)
    try:
        yield
    finally:
        _current[0] = ""
        _switch("")
        _subprocesses(False)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Iterator[None]:
    shared = getattr(fixturedef, "scope", "function") != "function"
    if shared:
        _switch(FIXTURE + fixturedef.argname)
    try:
        yield
    finally:
        if shared:
            _switch(_current[0])


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = os.environ.get(ENV_OUT)
    if not out:
        return
    collected = [item.nodeid for item in getattr(session, "items", ())]
    doc = {
        "rootdir": str(session.config.rootpath),
        "collected": collected,
        "fixtures": _fixtures,
    }
    path = Path(out) / f"tests-{os.getpid()}.json"
    with contextlib.suppress(OSError):  # the check then keeps the old map
        path.write_text(json.dumps(doc), encoding="utf-8")
