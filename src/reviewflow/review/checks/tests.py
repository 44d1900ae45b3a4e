"""The `tests` check: run the project's tests under coverage and judge the lines the change added.

Total coverage says little about a change: a project at 90% can merge a function nobody calls.
So the check reads coverage per line and reports which *added* executable lines no test ran.

Options:
    command   argv run as `coverage run -m <command>` (default `["pytest", "-q"]`); its first
              item is a module name
    args      extra arguments appended to the command (default none)
    exclude   changed files left out of the changed-line coverage (test code is run by being
              the tests): default tests/, test/, test_*.py, *_test.py, conftest.py
    min_coverage  percent of changed executable lines that must run; below it is an error
              (default none: uncovered lines are warnings only)
    impacted  true: run only the test files the change can affect (changed ones, and those
              that import a changed module), plus `always`; the whole command when that cannot
              be known (a conftest or the test configuration changed; see impact.py).
              map: run only the tests a coverage map of an earlier whole run says executed the
              changed files, new and changed tests, and the import graph's choice where the map
              cannot see (import-time changes, new modules); the whole suite when the map is
              missing or stale (see testmap.py; pytest commands only). The summary says
              which: `42 of 1,588 tests: coverage map of 8d5c730` or `whole suite:
              tests/conftest.py changed`. A command that is not pytest runs whole.
              Default false (the shipped `pr` template, and those extending it, say map)
    record_map  where a whole-suite run's map is (re)made: auto (default: background, off in
              CI), background (a detached low-priority run after this one, so the review
              does not wait for it), inline (this run measures every line per test: slower)
              or off. See testmap_record.py.
    always    paths run in every review with `impacted` (e.g. fast unit tests)
    parallel  pytest-xdist workers: true, false or auto (default: in parallel where the project
              names pytest-xdist, the machine has 2+ cores and pytest-xdist and pytest-cov are
              installed)
"""

from __future__ import annotations

import ast
import asyncio
import glob
import importlib.util
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import TaskFailed
from ..change import Change, ChangedFile, path_matches
from ..findings import CheckResult, Finding, clean_message
from . import testmap, testmap_record
from .base import CheckContext, ToolMissing
from .impact import impacted_tests, is_test_file

DEFAULT_COMMAND = ("pytest", "-q")
DEFAULT_EXCLUDE = ("tests/", "test/", "test_*.py", "*_test.py", "conftest.py")
TAIL_LINES = 30
SERIAL_BELOW = 50
"""A coverage-map selection of fewer tests runs without pytest-xdist (parallel: auto)."""

_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
_SUMMARY = re.compile(
    r"\b(?:no tests ran|\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed"
    r"|deselected))\b.* in [0-9.]+s"
)
_SHORT = re.compile(r"^(FAILED|ERROR) (\S+?)(?: - (.*))?$")
_NODE_PATH = re.compile(r"^([^:\s][^:]*\.py)(?:::(.*))?$")
_SECTION = re.compile(r"^_{3,} ERROR collecting (.+?) _{3,}$")


async def tests(ctx: CheckContext) -> CheckResult:
    """Run the tests under coverage; findings for failing tests and untested added lines."""
    if not ctx.files(".py"):
        return ctx.skip("no Python files changed")
    syntax = ctx.upstream.get("syntax")
    if syntax is not None and syntax.status == "failed":
        return ctx.skip("syntax errors")
    opts = ctx.options
    if "timeout" in opts:
        raise TaskFailed(
            "tests: option 'timeout' is gone: the check's own timeout applies "
            "(`checks.tests.timeout` in the template)",
            retryable=False,
        )
    command = _argv(opts.get("command", DEFAULT_COMMAND), "command")
    args = _argv(opts.get("args", ()), "args")
    exclude = _patterns(opts.get("exclude", DEFAULT_EXCLUDE))
    min_coverage = opts.get("min_coverage")
    coverage = ctx.python_module("coverage")
    root = Path(ctx.root)
    pytest = command[0] == "pytest"
    command_given = list(command)
    workers = _workers(opts.get("parallel", "auto"), root, [*command, *args]) if pytest else 1
    if pytest:
        ctx.python_module("pytest")
    impacted = opts.get("impacted", False)
    if impacted not in (True, False, "map"):
        raise TaskFailed("tests: option 'impacted' must be true, false or map", retryable=False)
    unmapped = ""
    if impacted == "map" and not pytest:
        # The map is the shipped templates' default: a project whose tests are not pytest's
        # still gets its whole command run, and the summary says why nothing was selected.
        impacted, unmapped = False, "whole suite: a coverage map needs a pytest command"
    always = _patterns(opts.get("always", ()))
    targets: list[str] = []
    selection: testmap.Selection | None = None
    suite = [*command_given, *args]  # what the map is of: the project's own command
    # The suite's own paths (`pytest -q tests/unit`): a selection runs within them, instead.
    scope = _suite_paths(root, suite[1:]) if pytest else []
    candidates = [t for t in _test_files(root, ctx.change) if _within(t, scope)] if impacted else []
    recording = testmap_record.mode(opts.get("record_map", "auto"))
    if impacted == "map" and not ctx.cache:
        selection = testmap.Selection(
            whole=True, reason="--no-cache: the coverage map is not used", unmapped=True
        )
    elif impacted == "map":
        selection = await asyncio.to_thread(testmap.select, root, ctx.change, suite, candidates)
        if not selection.whole:
            files = [f for f in selection.files if _within(f, scope)]
            targets = [*sorted({*files, *always}), *selection.nodes]
            if not targets:
                return ctx.skip(f"no test executed the changed files ({selection.reason})")
    elif impacted:
        chosen = impacted_tests(root, ctx.change, candidates)
        if chosen is not None:
            targets = sorted({*chosen, *always})
            if not targets:
                return ctx.skip("no test imports a changed module")
    if (
        selection is not None
        and not selection.whole
        and opts.get("parallel", "auto") == "auto"
        and selection.count < SERIAL_BELOW
    ):
        # A few tests: starting pytest-xdist's workers (each imports and collects) costs more
        # than running them one after another.
        workers = 1
    if pytest:
        command = [*command, *_pytest_extras(pytest_cov=workers > 1)]
        if workers == 1 and _serial_needs_saying(root, [*command, *args]):
            # The project's addopts may start pytest-xdist workers (`-n auto`), which
            # `coverage run` does not follow: a serial run says so.
            command.extend(["-n", "0"])
    whole_command, whole_args = command, args
    if targets and scope:
        command, args = _without(command, scope), _without(args, scope)

    measured = [
        f
        for f in ctx.change.present()
        if f.path.endswith(".py") and f.lines and not path_matches(f.path, exclude)
    ]
    if impacted == "map":
        # A recorder still running from an earlier review would run its suite beside this
        # one in the same work tree; the verdict comes first.
        await asyncio.to_thread(testmap_record.stop, root, suite)
    with tempfile.TemporaryDirectory(prefix="reviewflow-tests-") as tmp:
        record = selection is not None and selection.whole and recording == "inline"
        code, output, cov = await _run_suite(
            ctx, coverage, Path(tmp), command, args, targets, measured, workers, record
        )
        if selection is not None and not selection.whole and _not_found(code, output):
            # A node id the map named is gone (a parametrisation changed): run everything.
            selection = testmap.Selection(
                whole=True, reason="a test the coverage map named no longer exists"
            )
            record = recording == "inline"
            code, output, cov = await _run_suite(
                ctx, coverage, Path(tmp), whole_command, whole_args, [], measured, workers, record
            )
        _missing_packages(output, root, ctx.change, code)
        failures = _short_summary(output, root, ctx.check)
        failures, absent = _split_missing_modules(failures, root, ctx.change)
        if absent and not failures:
            raise _modules_missing(absent)
        # Neither is the change's doing nor goes away on a second try: no retry.
        if code in (2, 3, 4) and not (code == 2 and (failures or absent)):
            raise TaskFailed(
                f"tests could not run (exit {code}):\n{_tail(output)}", retryable=False
            )
        if code not in (0, 1, 2, 5):
            raise TaskFailed(f"test command exited with {code}:\n{_tail(output)}", retryable=False)
        counts = _counts(output)
        note = ""
        if record and code in (0, 1):
            note = "this run makes one"
            await asyncio.to_thread(
                testmap.build,
                root,
                testmap.recorder(Path(tmp), Path(tmp) / ".coverage", root),
                suite,
            )
        elif (
            recording == "background"
            and selection is not None
            and selection.whole
            and code in (0, 1)
        ):
            note = await asyncio.to_thread(
                testmap_record.start,
                root,
                coverage=coverage,
                command=suite,
                run=[*whole_command, *whole_args],
                workers=workers,
                timeout=ctx.timeout,
            )
        if selection is not None and selection.unmapped and note:
            selection.reason = f"{selection.reason} ({note})"

    metrics: dict[str, Any] = {
        "tests_passed": counts.get("passed", 0),
        "tests_failed": counts.get("failed", 0),
        "tests_errors": counts.get("error", 0),
        "tests_collected": sum(
            counts.get(k, 0) for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
        ),
        "total_coverage": _round(cov.get("totals", {}).get("percent_covered")) if cov else None,
    }
    if selection is not None:
        metrics["test_selection"] = selection.describe(
            sum(counts.get(k, 0) for k in ("passed", "failed", "error", "xfailed", "xpassed"))
        )
        metrics["whole_suite"] = selection.whole
    if absent:  # the rest ran: the failures count, the modules that could not load do not
        metrics["incomplete"] = True
        failures.append(
            Finding(
                check=ctx.check,
                severity="info",
                rule="test-deps-missing",
                message=str(_modules_missing(absent)),
            )
        )
    if code == 5:
        metrics.update(tests_collected=0, changed_line_coverage=None, uncovered_changed_lines=0)
        finding = Finding(
            check=ctx.check, severity="info", rule="no-tests", message="no tests found"
        )
        return ctx.result([finding], what="no tests found", metrics=metrics)

    uncovered: list[Finding] = []
    executable = covered = 0
    if cov is not None:  # no report: say nothing about lines rather than call them all untested
        uncovered, executable, covered = _changed_coverage(
            ctx.check, root, measured, _line_data(cov, root)
        )
    percent = _round(100.0 * covered / executable) if executable else None
    metrics.update(
        changed_line_coverage=percent,
        changed_executable_lines=executable,
        uncovered_changed_lines=executable - covered,
    )

    if code == 1 and not failures:
        failures = [
            Finding(
                check=ctx.check,
                severity="error",
                rule="test-failed",
                message=clean_message(f"tests failed (exit 1): {_tail(output, 3)}"),
            )
        ]
    findings = [*failures, *uncovered]
    if min_coverage is not None and percent is not None and percent < float(min_coverage):
        findings.append(
            Finding(
                check=ctx.check,
                severity="error",
                rule="coverage-below-threshold",
                message=f"{percent:g}% of changed lines covered (minimum {float(min_coverage):g}%)",
            )
        )
    what = (
        f"{metrics['tests_passed']} passed, {metrics['tests_failed']} failed; changed-line "
        f"coverage {'n/a' if percent is None else f'{percent:g}%'}"
    )
    if selection is not None:
        what = f"{metrics['test_selection']}; {what}"
    elif unmapped:
        metrics.update(test_selection=unmapped, whole_suite=True)
        what = f"{unmapped}; {what}"
    return ctx.result(findings, what=what, metrics=metrics)


async def _run_suite(
    ctx: CheckContext,
    coverage: list[str],
    tmp: Path,
    command: list[str],
    args: list[str],
    targets: list[str],
    measured: list[ChangedFile],
    workers: int,
    record: bool,
) -> tuple[int, str, dict[str, Any] | None]:
    """Run the tests under coverage: (exit code, output, coverage report of the measured files).

    `record`: the whole suite runs to (re)make the coverage map: the whole repository is
    measured, per test (testmap_plugin), subprocesses included.
    """
    root = Path(ctx.root)
    files = [str(root / f.path) for f in measured]
    argv, env = suite_argv(
        coverage, tmp, root, [*command, *args, *targets], files, workers, record=record
    )
    run = await ctx.run_tool(argv, cwd=root, env=env)
    output = run.stdout + run.stderr
    cov = None
    if measured or record:
        include = [glob.escape(f) for f in files] if record else []
        data = tmp / ".coverage"
        report = tmp / "coverage.json"
        cov = await _coverage_report(ctx, coverage, data, report, root, include, measured)
        if cov is None and not record and measured and run.returncode in (0, 1):
            # The tests ran under coverage and none of the changed files executed: no data
            # file at all. Every changed line is then unrun (read from the files themselves).
            cov = {"files": {}}
    return run.returncode, output, cov


def suite_argv(
    coverage: list[str],
    tmp: Path,
    root: Path,
    command: list[str],
    files: list[str],
    workers: int,
    *,
    record: bool,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of one run of the tests under coverage, its data in `tmp`.

    `files` (absolute paths) are measured (the changed source files; none: nothing is);
    `record` measures the whole repository per test for the coverage map instead. Shared with
    the background recorder (testmap_record.py), so a map recorded later is made by exactly
    the run the check would have made."""
    env = dict(_ENV)
    data = tmp / ".coverage"
    for old in tmp.glob(".coverage*"):
        old.unlink()
    plugin: list[str] = []
    if record:
        rec = testmap.recorder(tmp, data, root)
        env.update(rec.env)
        plugin = rec.pytest_args
        for old in [*rec.folder.glob("tests-*.json"), *rec.folder.glob("subprocess.coverage.*")]:
            old.unlink()
    # Only the changed files are traced (an `include` list in a config of our own): the rest
    # of the project, its package's other modules included, runs without line tracing.
    # A name a config line cannot hold (a newline) falls back to tracing its folder.
    measure: list[str] = []
    rc: Path | None = None
    if record:
        measure = [f"--source={root}"]
    elif files and not any("\n" in f or "\r" in f for f in files):
        rc = tmp / "measure.coveragerc"
        lines = "".join(f"    {glob.escape(f)}\n" for f in files)
        rc.write_text(f"[run]\ninclude =\n{lines}", encoding="utf-8")
    elif files:
        measure = [f"--source={folder}" for folder in sorted({str(Path(f).parent) for f in files})]
    module, rest = command[:1], command[1:]
    if workers > 1:
        # pytest-xdist's workers are processes of their own: pytest-cov measures them
        # and combines their data into COVERAGE_FILE.
        argv = [coverage[0], "-m", *module, *plugin, "-n", str(workers)]
        if rc is not None or measure:
            env["COVERAGE_FILE"] = str(data)
            if rc is not None:
                argv += ["--cov", f"--cov-config={rc}"]
            argv += [f"--cov={m.removeprefix('--source=')}" for m in measure]
            argv += ["--cov-report=", "--cov-fail-under=0"]
        else:
            # Nothing to measure (only tests changed): the project's own pytest-cov settings
            # in addopts would judge this partial run by the whole project's threshold.
            argv.append("--no-cov")
        return [*argv, *rest], env
    if rc is not None or measure:
        # --parallel-mode always, then combine: a project configured with `parallel = true`
        # writes suffixed data files anyway, and this way both cases read back the same.
        argv = [*coverage, "run", "--parallel-mode", f"--data-file={data}"]
        argv += [f"--rcfile={rc}"] if rc is not None else measure
        return [*argv, "-m", *module, *plugin, *rest], env
    return [coverage[0], "-m", *command], env  # only tests changed: nothing to measure


# pytest options whose value is the next argument (that value is not a test path).
_VALUED = frozenset(
    {
        "-k",
        "-m",
        "-p",
        "-c",
        "-o",
        "--rootdir",
        "--deselect",
        "--ignore",
        "--ignore-glob",
        "--confcutdir",
        "--basetemp",
        "--override-ini",
        "--config-file",
        "--import-mode",
    }
)


def _suite_paths(root: Path, argv: list[str]) -> list[str]:
    """The test paths a pytest command names (`tests/unit`, `tests/test_x.py::test_y`)."""
    paths: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("-") or (i and argv[i - 1] in _VALUED):
            continue
        if (root / arg.split("::", 1)[0]).exists():
            paths.append(arg)
    return paths


def _within(path: str, scope: list[str]) -> bool:
    """A test file inside the suite's paths (any file when the command names none)."""
    if not scope:
        return True
    for item in scope:
        base = item.split("::", 1)[0].rstrip("/")
        if base in ("", ".") or path == base or path.startswith(base + "/"):
            return True
    return False


def _without(argv: list[str], scope: list[str]) -> list[str]:
    """`argv` without the suite's paths: the selection's targets replace them."""
    return [a for a in argv if a not in scope]


def _not_found(code: int, output: str) -> bool:
    """pytest could not find a node id it was given (exit 4, `ERROR: not found: ...`)."""
    return code == 4 and "ERROR: not found:" in output


# pytest options a project's addopts may use, by the plugin that adds them.
_OPTION_PACKAGES = {
    "--cov": "pytest-cov",
    "--no-cov": "pytest-cov",
    "--timeout": "pytest-timeout",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist",
    "--benchmark": "pytest-benchmark",
    "--reruns": "pytest-rerunfailures",
    "--hypothesis": "hypothesis",
    "--asyncio-mode": "pytest-asyncio",
    "--ds": "pytest-django",
    "--randomly": "pytest-randomly",
    "--mypy": "pytest-mypy",
    "--doctest-plus": "pytest-doctestplus",
}
# Import names that differ from the package that provides them.
_MODULE_PACKAGES = {
    "yaml": "PyYAML",
    "PIL": "Pillow",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "attr": "attrs",
    "jwt": "PyJWT",
    "dotenv": "python-dotenv",
    "git": "GitPython",
    "magic": "python-magic",
    "Crypto": "pycryptodome",
    "OpenSSL": "pyOpenSSL",
    "serial": "pyserial",
    "zmq": "pyzmq",
}
# ini options a project's pytest config may set, by the plugin that reads them.
_INI_PACKAGES = {
    "timeout": "pytest-timeout",
    "timeout_method": "pytest-timeout",
    "asyncio_mode": "pytest-asyncio",
    "asyncio_default_fixture_loop_scope": "pytest-asyncio",
    "DJANGO_SETTINGS_MODULE": "pytest-django",
    "env": "pytest-env",
    "mock_use_standalone_module": "pytest-mock",
    "reruns": "pytest-rerunfailures",
    "flake8-max-line-length": "pytest-flake8",
}
_UNRECOGNIZED = re.compile(r"error: unrecognized arguments: (.+)")
_UNKNOWN_INI = re.compile(r"Unknown config option: (\S+)")
_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([^']+)'")


def _missing_packages(output: str, root: Path, change: Change, code: int) -> None:
    """The project's pytest config asks for plugins that are not installed: say which.

    That is the environment, not the change: the check is skipped with the package to
    install, rather than failing the review. The same for a conftest that cannot import.
    """
    match = _UNRECOGNIZED.search(output)
    if match:
        options = match.group(1).split()
        packages = sorted(
            {
                pkg
                for opt in options
                for prefix, pkg in _OPTION_PACKAGES.items()
                if opt == prefix or opt.startswith((prefix + "=", prefix + "-"))
            }
        )
        if packages:
            install = f"pip install {' '.join(packages)}"
            raise ToolMissing(
                packages[0],
                install,
                message=f"the project's pytest options ({' '.join(options)}) need "
                f"{', '.join(packages)}, not installed: {install}",
            )
    # An unknown ini option is only a warning, unless the project made warnings errors.
    ini = sorted({k for k in _UNKNOWN_INI.findall(output) if k in _INI_PACKAGES})
    if ini and code in (2, 3, 4):
        packages = sorted({_INI_PACKAGES[k] for k in ini})
        install = f"pip install {' '.join(packages)}"
        raise ToolMissing(
            packages[0],
            install,
            message=f"the project's pytest config ({', '.join(ini)}) needs "
            f"{', '.join(packages)}, not installed: {install}",
        )
    if "ImportError while loading conftest" in output:
        absent = {
            m
            for m in _NO_MODULE.findall(output)
            if not _is_project_module(root, change, m.split(".")[0])
        }
        if absent:
            raise _modules_missing(absent)


def _split_missing_modules(
    failures: list[Finding], root: Path, change: Change
) -> tuple[list[Finding], set[str]]:
    """Collection errors caused by a third-party module that is not installed, set apart.

    A module of the project itself that fails to import is the change's fault and stays an
    error; a package the environment lacks is not a finding about the change.
    """
    kept: list[Finding] = []
    absent: set[str] = set()
    for finding in failures:
        m = _NO_MODULE.search(finding.message)
        if (
            finding.rule == "test-error"
            and m
            and not _is_project_module(root, change, m.group(1).split(".")[0])
        ):
            absent.add(m.group(1).split(".")[0])
        else:
            kept.append(finding)
    return kept, absent


def _is_project_module(root: Path, change: Change, name: str) -> bool:
    """A module of the repository, here or before the change (which may have removed it)."""
    bases = ("", "src/", "tests/", "test/")
    if any((root / b / name).is_dir() or (root / b / f"{name}.py").is_file() for b in bases):
        return True
    gone = [f.old_path or f.path for f in change.files if f.status in ("deleted", "renamed")]
    return any(
        path.removeprefix(b).split("/", 1)[0].removesuffix(".py") == name
        for path in gone
        for b in bases
        if path.startswith(b)
    )


def _modules_missing(modules: set[str]) -> ToolMissing:
    names = sorted({_MODULE_PACKAGES.get(m, m) for m in modules})
    install = f"pip install {' '.join(names)}"
    return ToolMissing(
        names[0],
        install,
        message=f"the tests import {', '.join(sorted(modules))}, not installed: {install}",
    )


def _changed_coverage(
    check: str,
    root: Path,
    files: Iterable[ChangedFile],
    lines: Mapping[str, tuple[set[int], set[int]]],
) -> tuple[list[Finding], int, int]:
    """Findings for untested runs of added lines, and (executable, executed) added lines."""
    findings: list[Finding] = []
    executable = covered = 0
    for changed in files:
        executed, missing = lines.get(changed.path) or (set(), _statements(root / changed.path))
        for start, end in _missing_runs(changed.lines, executed, missing):
            span = f"line {start}" if start == end else f"lines {start}-{end}"
            findings.append(
                Finding(
                    check=check,
                    file=changed.path,
                    line=start,
                    severity="warning",
                    rule="uncovered",
                    message=f"{span} not covered by tests",
                )
            )
        added = [n for s, e in changed.lines for n in range(s, e + 1)]
        executable += sum(1 for n in added if n in executed or n in missing)
        covered += sum(1 for n in added if n in executed)
    return findings, executable, covered


_ENV = {
    # Keep the user's tree clean (no __pycache__), and keep an outer coverage session (a
    # reviewflow run under test) from starting a second tracer inside this one.
    "PYTHONDONTWRITEBYTECODE": "1",
    "COVERAGE_PROCESS_START": "",
}


def _pytest_extras(*, pytest_cov: bool = False) -> list[str]:
    """Flags that make pytest's output parseable and leave no cache in the repository.

    `-rfE` lists each failure and error on one line. A module that cannot be collected must
    not hide the results of all the others (pytest stops before running anything).
    pytest-cov, if the project configured it in addopts, would start a second coverage session
    inside ours and may fail the run on its own threshold, so it is switched off — unless it
    is the one measuring (`pytest_cov`: parallel runs).
    """
    extras = ["-p", "no:cacheprovider", "-rfE", "--continue-on-collection-errors"]
    if not pytest_cov and importlib.util.find_spec("pytest_cov") is not None:
        extras.append("--no-cov")
    return extras


def _workers(setting: Any, root: Path, argv: list[str]) -> int:
    """How many pytest-xdist workers: `parallel` is true, false or "auto".

    "auto" runs in parallel only where the project says its suite allows it (it names
    pytest-xdist among its dependencies or configuration), the machine has more than one core,
    and both pytest-xdist and pytest-cov (which measures xdist's workers) are installed.
    """
    if setting not in (True, False, "auto"):
        raise TaskFailed("tests: option 'parallel' must be true, false or auto", retryable=False)
    if setting is False or "-n" in argv or any(a.startswith("--numprocesses") for a in argv):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    installed = all(importlib.util.find_spec(m) is not None for m in ("xdist", "pytest_cov"))
    if setting is True:
        if not installed:
            raise ToolMissing("pytest-xdist", "pip install pytest-xdist pytest-cov")
        return max(2, min(cores or 1, 8))
    if not installed or (cores or 1) < 2 or not _declares_xdist(root):
        return 1
    return min(cores or 1, 8)


def _serial_needs_saying(root: Path, argv: list[str]) -> bool:
    """A serial run of a project naming pytest-xdist, installed, whose command does not choose
    the number of workers itself."""
    if any(a.startswith(("-n", "--numprocesses")) for a in argv):
        return False
    return importlib.util.find_spec("xdist") is not None and _declares_xdist(root)


def _declares_xdist(root: Path) -> bool:
    names = ["pyproject.toml", "setup.cfg", "tox.ini", "pytest.ini"]
    names += [p.name for p in root.glob("requirements*.txt")]
    for name in names:
        try:
            if "pytest-xdist" in (root / name).read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def _test_files(root: Path, change: Change) -> list[str]:
    """The repository's test files: tracked ones and the change's new ones."""
    from ..change import git

    done = git(root, "ls-files", "-z", "--", "*.py", check=False)
    tracked = [p for p in done.stdout.decode("utf-8", "replace").split("\0") if p]
    new = [f.path for f in change.present()]
    return sorted({p for p in [*tracked, *new] if is_test_file(p)})


def _argv(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        import shlex

        value = shlex.split(value)
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str | int | float) for v in value
    ):
        raise TaskFailed(f"tests: option {name!r} must be a list of strings", retryable=False)
    argv = [str(v) for v in value]
    if name == "command" and not argv:
        raise TaskFailed("tests: option 'command' must not be empty", retryable=False)
    return argv


def _patterns(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


async def _coverage_report(
    ctx: CheckContext,
    coverage: list[str],
    data: Path,
    report: Path,
    root: Path,
    include: list[str] | None = None,
    measured: list[ChangedFile] | None = None,
) -> dict[str, Any] | None:
    """The coverage JSON report (of `include` only, if given), or None when nothing was
    measured. The data of every process is combined into `data` (kept for the map)."""
    combined = await ctx.run_tool(
        [*coverage, "combine", "--append", f"--data-file={data}"], cwd=root, env=_ENV
    )
    if (combined.returncode != 0 and not data.exists()) or measured == []:
        return None
    made = await ctx.run_tool(
        [
            *coverage,
            "json",
            f"--data-file={data}",
            "-o",
            str(report),
            "--ignore-errors",
            *([f"--include={','.join(include)}"] if include else []),
        ],
        cwd=root,
        env=_ENV,
    )
    if made.returncode != 0 or not report.exists():
        return None
    loaded: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return loaded


def _line_data(cov: Mapping[str, Any], root: Path) -> dict[str, tuple[set[int], set[int]]]:
    """(executed, missing) line numbers per repo-relative POSIX path.

    coverage names a file relative to the directory it reported from when the file is inside
    it, absolute otherwise; both are mapped back, through symlinks (/tmp vs /private/tmp).
    """
    roots = {root, root.resolve()}
    out: dict[str, tuple[set[int], set[int]]] = {}
    for name, entry in cov.get("files", {}).items():
        path = Path(name)
        if path.is_absolute():
            rel = _relative(path, roots) or _relative(path.resolve(), roots)
            if rel is None:
                continue
        else:
            rel = PurePosixPath(*path.parts).as_posix()
        out[rel] = (set(entry.get("executed_lines", ())), set(entry.get("missing_lines", ())))
    return out


def _relative(path: Path, roots: Iterable[Path]) -> str | None:
    for root in roots:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    return None


def _statements(path: Path) -> set[int]:
    """Statement lines of a file coverage never saw (a module no test imports).

    coverage only reports unimported files it can find as packages, so a new module in a
    src/ layout would otherwise count as having no executable lines at all.
    """
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return set()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not _is_docstring(node):
            lines.add(node.lineno)
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.decorator_list
        ):
            lines.discard(node.lineno)
            lines.add(node.decorator_list[0].lineno)
    return lines


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _missing_runs(
    ranges: Iterable[tuple[int, int]], executed: set[int], missing: set[int]
) -> list[tuple[int, int]]:
    """Runs of untested added lines; blank and comment lines do not break a run."""
    runs: list[tuple[int, int]] = []
    for start, end in ranges:
        run: list[int] = []
        for n in range(start, end + 1):
            if n in missing:
                run.append(n)
            elif n in executed and run:
                runs.append((run[0], run[-1]))
                run = []
        if run:
            runs.append((run[0], run[-1]))
    return runs


def _counts(output: str) -> dict[str, int]:
    """Counts from pytest's last summary line (`2 failed, 5 passed, 1 error in 0.31s`)."""
    counts: dict[str, int] = {}
    lines = [ln for ln in output.splitlines() if _SUMMARY.search(ln)]
    if not lines:
        return counts
    for number, word in _COUNT.findall(lines[-1]):
        key = "error" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def _short_summary(output: str, root: Path, check: str) -> list[Finding]:
    """One finding per `FAILED`/`ERROR` line of pytest's short test summary."""
    findings: list[Finding] = []
    seen: set[str] = set()
    reasons = _collection_errors(output)
    failed = _failure_reasons(output)
    for raw in output.splitlines():
        m = _SHORT.match(raw.strip())
        if not m or m.group(2) in seen:
            continue
        kind, node, reason = m.groups()
        # pytest cuts the summary line to the terminal's width, or drops the message: the
        # failure's own section says it whole.
        reason = failed.get(_section_name(node)) or reason or reasons.get(node)
        seen.add(node)
        file, line = _locate(node, root)
        rule = "test-failed" if kind == "FAILED" else "test-error"
        verb = "failed" if kind == "FAILED" else "errored"
        message = f"test {node} {verb}" + (f": {reason}" if reason else "")
        findings.append(
            Finding(
                check=check,
                file=file,
                line=line,
                severity="error",
                rule=rule,
                message=clean_message(message),
            )
        )
    return findings


_FAILURE = re.compile(r"^_{3,} (?:ERROR at (?:setup|teardown) of )?(.+?) _{3,}$")
_RAISED_AT = re.compile(r"^\S.*:\d+: ([A-Za-z_][\w.]*)$")


def _section_name(node: str) -> str:
    """How pytest heads a test's failure section: `TestA.test_b[1]` for `x.py::TestA::test_b[1]`."""
    return node.split("::", 1)[1].replace("::", ".") if "::" in node else node


def _failure_reasons(output: str) -> dict[str, str]:
    """The exception type and first message line of each failure section, by section name
    (`AssertionError: assert 3 == 4`, `ValueError: no [database] table`)."""
    reasons: dict[str, str] = {}
    current: str | None = None
    first: str | None = None
    for raw in output.splitlines():
        header = _FAILURE.match(raw)
        if header and " ERROR collecting " not in raw:
            current, first = header.group(1), None
        elif raw.startswith("=") or raw.startswith("_" * 3):
            current = None
        elif current is None:
            continue
        elif raw.startswith("E ") and first is None:
            first = raw[1:].strip()
            reasons[current] = first
        elif first is not None and (m := _RAISED_AT.match(raw)):
            kind = m.group(1).rsplit(".", 1)[-1]
            if not first.startswith(kind):
                reasons[current] = f"{kind}: {first}"
    return reasons


def _collection_errors(output: str) -> dict[str, str]:
    """The last `E   ...` line of each `ERROR collecting <path>` section, by path.

    pytest's short summary gives no reason for a module that failed to import; that reason
    (`ImportError: cannot import name ...`) is what the author needs to see.
    """
    reasons: dict[str, str] = {}
    current: str | None = None
    for raw in output.splitlines():
        header = _SECTION.match(raw)
        if header:
            current = header.group(1)
        elif raw.startswith("=") or raw.startswith("_" * 3):
            current = None
        elif current is not None and raw.startswith("E "):
            reasons[current] = raw[1:].strip()
    return reasons


def _locate(node: str, root: Path) -> tuple[str | None, int | None]:
    """File and `def` line of a pytest node id (`tests/test_x.py::TestA::test_b[1]`)."""
    m = _NODE_PATH.match(node)
    if not m:
        return None, None
    file = m.group(1)
    path = root / file
    if not path.is_file():
        return None, None
    names = [n.split("[", 1)[0] for n in (m.group(2) or "").split("::") if n]
    if not names:
        return file, None
    try:
        body: list[ast.stmt] = ast.parse(path.read_bytes()).body
    except (OSError, SyntaxError, ValueError):
        return file, None
    line: int | None = None
    for name in names:
        found = next(
            (
                n
                for n in body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and n.name == name
            ),
            None,
        )
        if found is None:
            break
        line, body = found.lineno, found.body
    return file, line


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def changed_python(change: Change, exclude: Iterable[str] = DEFAULT_EXCLUDE) -> list[str]:
    """Changed source files whose added lines the check measures (tests themselves excluded)."""
    return [p for p in change.paths(".py") if not path_matches(p, list(exclude))]


__all__ = ["DEFAULT_COMMAND", "DEFAULT_EXCLUDE", "changed_python", "tests"]
