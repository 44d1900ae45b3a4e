"""Plugins through the CLI, in real `python -m reviewflow` processes.

A tiny plugin package (tests/data/plugins/rf_tiny_plugin: the task type `echo_param` and the
check `licence`, declared as entry points) is installed with pip into a temporary folder, which
the processes get on PYTHONPATH: importlib.metadata finds its entry points as it would in any
environment, and the shared venv is left alone. Plugin folders (`plugins: [plugins/]` in a
workflow or a template) are written under tmp_path. No command may print a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reviewflow.store import SQLiteStore
from rfhelpers import write_files

PACKAGE = Path(__file__).resolve().parents[1] / "data" / "plugins" / "rf_tiny_plugin"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def rf(
    *args: Any, cwd: Path, path: list[Path] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m reviewflow ARGS` in `cwd` with `path` on PYTHONPATH; never a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("REVIEWFLOW_DB", "PYTHONPATH")}
    if path:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    done = subprocess.run(
        [sys.executable, "-m", "reviewflow", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error of a command that failed with bad input: exit 2, one line on stderr."""
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip()
    assert "\n" not in message, message
    assert message.startswith("error: "), message
    return message


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        check=True,
        env={**os.environ, **GIT_ENV},
        timeout=60,
    )


def repo_with_change(root: Path, change: dict[str, str]) -> Path:
    """A repository on main with a README, and a branch `feature` adding `change`."""
    write_files(root, {"README.md": "# project\n"})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", "base")
    git(root, "checkout", "-q", "-b", "feature")
    write_files(root, change)
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", "feature")
    return root


def review(
    repo: Path,
    template: Path | str,
    *,
    cwd: Path,
    path: list[Path] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    out = cwd / "report"
    done = rf(
        "review",
        repo,
        "--template",
        template,
        "--out",
        out,
        "--db",
        cwd / "rf.db",
        cwd=cwd,
        path=path,
    )
    report = out / "report.json"
    return done, json.loads(report.read_text()) if report.exists() else None


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rf_tiny_plugin installed by pip (offline) into a folder: put it on PYTHONPATH."""
    work = tmp_path_factory.mktemp("tiny-plugin")
    source = work / "src"
    shutil.copytree(PACKAGE, source)
    site = work / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (dist,) = site.glob("rf_tiny_plugin-0.1.0.dist-info")
    entry_points = (dist / "entry_points.txt").read_text()
    assert "[reviewflow.task_types]" in entry_points and "[reviewflow.checks]" in entry_points
    return site


@pytest.fixture
def ghost_dist(tmp_path: Path) -> Path:
    """An installed distribution whose entry points name a module that is not there."""
    site = tmp_path / "ghost-site"
    write_files(
        site,
        {
            "rf_ghost-1.0.dist-info/METADATA": (
                "Metadata-Version: 2.1\nName: rf-ghost\nVersion: 1.0\n"
            ),
            "rf_ghost-1.0.dist-info/entry_points.txt": """
            [reviewflow.task_types]
            ghost_type = rf_ghost_not_installed:GhostType

            [reviewflow.checks]
            ghost = rf_ghost_not_installed:ghost
        """,
        },
    )
    return site


# ------------------------------------------------------------------ an installed plugin package


def test_installed_package_task_type_validates_runs_and_its_result_is_stored(tiny_site, tmp_path):
    write_files(
        tmp_path,
        {
            "wf.yaml": """
        name: tiny
        tasks:
          first: {type: echo_param, params: {greeting: hello, n: 2}}
          second: {type: echo_param, needs: [first], params: {after: first}}
    """
        },
    )
    # Without the package the type does not exist: the install is what provides it.
    message = one_line_error(rf("validate", "wf.yaml", cwd=tmp_path))
    assert "unknown task type 'echo_param'" in message

    done = rf("validate", "wf.yaml", cwd=tmp_path, path=[tiny_site])
    assert done.returncode == 0, done.stderr
    assert "wf.yaml: ok (tiny: 2 tasks)" in done.stdout

    done = rf(
        "run",
        "wf.yaml",
        "--db",
        "rf.db",
        "--run-id",
        "t1",
        "--json",
        cwd=tmp_path,
        path=[tiny_site],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["state"] == "succeeded"
    # The result is in the database: a new process (which needs no plugin to read it) sees it.
    done = rf("status", "t1", "--db", "rf.db", "--json", cwd=tmp_path)
    results = {t["name"]: t["result"] for t in json.loads(done.stdout)["tasks"]}
    assert results == {
        "first": {"echo": {"greeting": "hello", "n": 2}, "attempt": 1, "plugin": "rf_tiny_plugin"},
        "second": {"echo": {"after": "first"}, "attempt": 1, "plugin": "rf_tiny_plugin"},
    }


@needs_git
def test_installed_package_check_runs_in_a_review(tiny_site, tmp_path):
    repo = repo_with_change(
        tmp_path / "repo",
        {
            "src/no_header.py": "x = 1\n",
            "src/with_header.py": "# SPDX-License-Identifier: MIT\ny = 2\n",
            "docs/notes.md": "not python, not checked\n",
        },
    )
    write_files(
        tmp_path,
        {
            "tmpl.yaml": """
        name: licensed
        extends: pr
        checks:
          licence: {when: always}
          # Quick: syntax (in-process) stays; no ruff or pytest runs.
          lint: {when: never}
          format: {when: never}
          tests: {when: never}
        gates: {min_changed_line_coverage: null}
    """
        },
    )
    done, doc = review(repo, "tmpl.yaml", cwd=tmp_path, path=[tiny_site])
    assert doc is not None, done.stdout + done.stderr
    assert done.returncode == 1  # the licence error on a changed line requests changes
    assert "checks: syntax, licence" in done.stdout
    assert doc["verdict"] == "request_changes"
    assert doc["checks"]["syntax"]["status"] == "passed"
    assert doc["checks"]["licence"]["status"] == "failed"
    assert doc["checks"]["licence"]["summary"] == "licence headers: 1 error(s), 0 warning(s)"
    assert doc["findings"] == [
        {
            "check": "licence",
            "file": "src/no_header.py",
            "line": 1,
            "severity": "error",
            "rule": "licence-header",
            "message": "no SPDX-License-Identifier line at the top of the file",
        }
    ]


# ---------------------------------------------------------------------------- plugin folders


MYTYPE = """
    class Shout:
        name = "shout"

        def validate(self, spec):
            pass

        async def execute(self, ctx):
            return {"shout": str(ctx.params.get("text", "")).upper()}


    TASK_TYPES = [Shout]
"""


def test_folder_plugin_task_type_from_a_workflow_run_from_another_directory(tmp_path):
    project = write_files(
        tmp_path / "project",
        {
            "plugins/mytype.py": MYTYPE,
            "wf.yaml": """
            name: folder
            plugins: [plugins/]
            tasks:
              a: {type: shout, params: {text: hi}}
              b: {type: shell, run: [sh, -c, "echo done"], needs: [a]}
        """,
        },
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = rf("validate", "../project/wf.yaml", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "ok (folder: 2 tasks)" in done.stdout
    done = rf("run", project / "wf.yaml", "--db", "rf.db", "--json", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["state"] == "succeeded"
    assert {t["name"]: t["result"] for t in doc["tasks"]}["a"] == {"shout": "HI"}


def test_folder_plugin_task_type_is_found_again_when_a_new_process_resumes(tmp_path):
    project = write_files(
        tmp_path / "project",
        {
            "plugins/mytype.py": MYTYPE,
            "wf.yaml": """
            name: resumable
            plugins: [plugins/]
            tasks:
              gate: {type: approval}
              a: {type: shout, needs: [gate], params: {text: later}}
        """,
        },
    )
    db = tmp_path / "rf.db"
    env = {k: v for k, v in os.environ.items() if k not in ("REVIEWFLOW_DB", "PYTHONPATH")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reviewflow", "run", "wf.yaml", "--db", str(db), "--run-id", "r1"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        state = None
        while state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
            if db.exists():
                with contextlib.closing(SQLiteStore(db)) as store:
                    state = {t.name: t.state for t in store.get_tasks("r1")}.get("gate")
        assert state == "running"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output
    assert "Traceback" not in output

    # Another process, in another directory, approves and resumes: the stored workflow names
    # the plugin folder by absolute path, so the task type is there again.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = rf("approve", "r1", "gate", "--db", db, "--by", "tester", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    done = rf("resume", "r1", "--db", db, "--json", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    results = {t["name"]: t["result"] for t in json.loads(done.stdout)["tasks"]}
    assert results["a"] == {"shout": "LATER"}


MYCHECKS = """
    from reviewflow.review.findings import Finding


    def todo_free(ctx):
        # sync, returns finding dicts (the check's name is filled in)
        out = []
        for path in ctx.files(".py"):
            lines = (ctx.root / path).read_text().splitlines()
            for number, line in enumerate(lines, 1):
                if "TODO" in line:
                    out.append({"file": path, "line": number, "severity": "warning",
                                "rule": "todo", "message": "a TODO is left"})
        return out


    async def py_count(ctx):
        # async, returns a CheckResult
        files = ctx.files(".py")
        return ctx.result([], what=f"{len(files)} python file(s)", metrics={"files": len(files)})


    async def no_print(ctx):
        # async, returns Finding objects; registered by register()
        return [Finding(check=ctx.check, file=path, line=1, severity="error", rule="print",
                        message="print() call")
                for path in ctx.files(".py") if "print(" in (ctx.root / path).read_text()]


    CHECKS = {"todo-free": todo_free, "py-count": py_count}


    def register(task_types, checks):
        checks.register("no-print", no_print)
"""


@needs_git
def test_folder_plugin_checks_sync_async_and_finding_dicts_run_in_a_review(tmp_path):
    repo = repo_with_change(
        tmp_path / "repo",
        {
            "app.py": "def f():\n    return 1  # TODO: real value\n",
            "tool.py": "print('hi')\n",
        },
    )
    # The plugin folder is named by a parent template, relative to that template's file.
    write_files(
        tmp_path,
        {
            "shared/plugins/mycheck.py": MYCHECKS,
            "shared/base.yaml": """
            name: base
            plugins: [plugins/]
            checks:
              todo-free: {when: always}
              py-count: {when: always}
              printless: {uses: no-print, when: always}
            gates: {max_errors: 0}
        """,
            "team/review.yaml": """
            name: team
            extends: ../shared/base.yaml
        """,
        },
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done, doc = review(repo, "../team/review.yaml", cwd=elsewhere)
    assert doc is not None, done.stdout + done.stderr
    assert done.returncode == 1, done.stdout + done.stderr  # the print() error
    checks = doc["checks"]
    assert set(checks) == {"todo-free", "py-count", "printless"}
    assert checks["todo-free"]["status"] == "passed" and checks["todo-free"]["findings"] == 1
    assert checks["py-count"]["status"] == "passed"
    assert checks["py-count"]["summary"] == "2 python file(s): no findings"
    assert checks["py-count"]["metrics"] == {"files": 2}
    assert checks["printless"]["status"] == "failed"
    assert sorted(doc["findings"], key=lambda f: f["check"]) == [
        {
            "check": "printless",
            "file": "tool.py",
            "line": 1,
            "severity": "error",
            "rule": "print",
            "message": "print() call",
        },
        {
            "check": "todo-free",
            "file": "app.py",
            "line": 2,
            "severity": "warning",
            "rule": "todo",
            "message": "a TODO is left",
        },
    ]


# --------------------------------------------------------------------------- broken plugins


BROKEN = {
    "import": (
        "import rf_module_that_is_not_installed\n",
        "ModuleNotFoundError: No module named 'rf_module_that_is_not_installed'",
    ),
    "syntax": (
        "class Broken:\n    name = 'broken_type'\n    def validate(self, spec) pass\n",
        "SyntaxError: ",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_folder_plugin_breaks_only_the_workflows_that_use_it(tmp_path, kind):
    source, cause = BROKEN[kind]
    project = write_files(
        tmp_path / "project",
        {
            "plugins/good.py": MYTYPE,
            "plugins/broken.py": source,
            "good.yaml": """
            name: good
            plugins: [plugins/]
            tasks:
              a: {type: shout, params: {text: ok}}
        """,
            "bad.yaml": """
            name: bad
            plugins: [plugins/]
            tasks:
              a: {type: shout, params: {text: ok}}
              b: {type: broken_type, needs: [a]}
        """,
        },
    )
    done = rf("validate", "good.yaml", cwd=project)
    assert done.returncode == 0, done.stderr
    done = rf("run", "good.yaml", "--db", "rf.db", "--json", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["state"] == "succeeded"

    for command in (["validate", "bad.yaml"], ["run", "bad.yaml", "--db", "rf.db"]):
        message = one_line_error(rf(*command, cwd=project))
        assert "bad.yaml:5: task 'b': field 'type': unknown task type 'broken_type'" in message
        assert f"plugin broken.py failed to load: {cause}" in message
        if kind == "syntax":
            assert "(broken.py, line 3)" in message


def test_a_missing_plugin_folder_of_a_workflow_is_named(tmp_path):
    write_files(
        tmp_path,
        {
            "wf.yaml": """
        name: typo
        plugins: [plugins/, plugnis/]
        tasks:
          a: {type: shell, run: ["true"]}
    """
        },
    )
    (tmp_path / "plugins").mkdir()
    for command in (["validate", "wf.yaml"], ["run", "wf.yaml", "--db", "rf.db"]):
        message = one_line_error(rf(*command, cwd=tmp_path))
        assert f"plugin folder '{tmp_path / 'plugnis'}' does not exist" in message
        assert "field 'plugins'" in message
    assert not (tmp_path / "rf.db").exists()  # refused before anything was stored


def test_a_broken_entry_point_breaks_only_what_uses_it(tiny_site, ghost_dist, tmp_path):
    write_files(
        tmp_path,
        {
            "ghost.yaml": "name: ghost\ntasks:\n  a: {type: ghost_type}\n",
            "tiny.yaml": "name: tiny\ntasks:\n  a: {type: echo_param, params: {k: v}}\n",
        },
    )
    path = [tiny_site, ghost_dist]
    message = one_line_error(rf("validate", "ghost.yaml", cwd=tmp_path, path=path))
    assert "unknown task type 'ghost_type'" in message
    assert (
        "plugin ghost_type failed to load: "
        "ModuleNotFoundError: No module named 'rf_ghost_not_installed'"
    ) in message
    assert "echo_param" in message  # the working package's type is known

    done = rf("run", "tiny.yaml", "--db", "rf.db", "--json", cwd=tmp_path, path=path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["tasks"][0]["result"]["echo"] == {"k": "v"}


@needs_git
def test_a_review_with_a_broken_entry_point_installed_runs_the_working_checks(
    tiny_site, ghost_dist, tmp_path
):
    repo = repo_with_change(tmp_path / "repo", {"a.py": "a = 1\n"})
    write_files(
        tmp_path,
        {
            "tmpl.yaml": """
        name: licence-only
        checks:
          licence: {when: always}
    """
        },
    )
    done, doc = review(repo, "tmpl.yaml", cwd=tmp_path, path=[tiny_site, ghost_dist])
    assert doc is not None, done.stdout + done.stderr
    assert doc["checks"]["licence"]["status"] == "failed"
    assert [f["file"] for f in doc["findings"]] == ["a.py"]


@needs_git
def test_a_review_using_a_broken_entry_point_check_runs_the_others_and_reports_it(
    tiny_site, ghost_dist, tmp_path
):
    repo = repo_with_change(tmp_path / "repo", {"a.py": "a = 1\n"})
    write_files(
        tmp_path,
        {
            "tmpl.yaml": """
        name: with-ghost
        checks:
          licence: {when: always}
          ghost: {when: always}
    """
        },
    )
    done, doc = review(repo, "tmpl.yaml", cwd=tmp_path, path=[tiny_site, ghost_dist])
    assert doc is not None, done.stdout + done.stderr
    assert done.returncode == 1
    assert doc["checks"]["licence"]["status"] == "failed"
    assert doc["checks"]["ghost"]["status"] == "error"
    summary = doc["checks"]["ghost"]["summary"]
    assert "failed to load" in summary and "rf_ghost_not_installed" in summary


GOOD_CHECK = """
    def todo_free(ctx):
        return [{"file": p, "line": 1, "rule": "todo", "message": "TODO"}
                for p in ctx.files(".py") if "TODO" in (ctx.root / p).read_text()]

    CHECKS = {"todo-free": todo_free}
"""


@pytest.fixture(scope="module")
def broken_folder_review(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """A review whose template's plugin folder holds a good check plugin and a broken one."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    work = tmp_path_factory.mktemp("broken-review")
    repo = repo_with_change(work / "repo", {"a.py": "a = 1  # TODO\n"})
    write_files(
        work,
        {
            "plugins/good.py": GOOD_CHECK,
            "plugins/broken.py": """
            import rf_module_that_is_not_installed

            CHECKS = {"broken-check": lambda ctx: []}
        """,
            "tmpl.yaml": """
            name: half-broken
            plugins: [plugins/]
            checks:
              todo-free: {when: always}
              broken-check: {when: always}
              syntax: {when: always}
        """,
        },
    )
    return review(repo, "tmpl.yaml", cwd=work)


def test_a_review_with_a_broken_folder_plugin_runs_the_other_checks(broken_folder_review):
    done, doc = broken_folder_review
    assert doc is not None, done.stdout + done.stderr
    assert (
        "warning: plugin broken.py failed to load: ModuleNotFoundError: "
        "No module named 'rf_module_that_is_not_installed'"
    ) in done.stderr
    assert done.returncode == 1  # a check that could not run means request_changes
    checks = doc["checks"]
    assert checks["todo-free"]["status"] == "passed" and checks["todo-free"]["findings"] == 1
    assert checks["syntax"]["status"] == "passed"
    assert checks["broken-check"]["status"] == "error"
    assert "unknown check 'broken-check'" in checks["broken-check"]["summary"]
    assert [f["check"] for f in doc["findings"]] == ["todo-free"]


def test_the_review_report_names_the_broken_folder_plugin(broken_folder_review):
    _, doc = broken_folder_review
    assert doc is not None
    summary = doc["checks"]["broken-check"]["summary"]
    assert "plugin broken.py failed to load" in summary or "'broken.py'" in summary
    assert "rf_module_that_is_not_installed" in summary
    assert any("broken.py" in reason for reason in doc["reasons"])
