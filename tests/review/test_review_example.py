"""`reviewflow run examples/review.yaml`: the security and pr templates on one change, then
one summary of both verdicts.

Each test runs the example as a user does (a `reviewflow run` process, REVIEW_PATH naming a
small throwaway git repository) and checks what the reader relies on: the run's exit code
follows the verdicts, and the summary names each template's verdict even when one requested
changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import branch_with, make_repo

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "review.yaml"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CALC = 'def add(a: int, b: int) -> int:\n    """Sum."""\n    return a + b\n'
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
MUL = '\n\ndef mul(a: int, b: int) -> int:\n    """Product."""\n    return a * b\n'
TEST_MUL = "\n\ndef test_mul():\n    from calc import mul\n\n    assert mul(2, 3) == 6\n"
README = "# calc\n\n`add(a, b)` and `mul(a, b)`.\n"  # the new function documented: no docs finding


def run_example(cwd: Path, repo: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The example in `cwd` (its reports land under cwd/.reviewflow) on `repo`."""
    bin_dir = str(Path(sys.executable).parent)  # the `reviewflow` the shell tasks start
    env = {
        **os.environ,
        "REVIEW_PATH": str(repo),
        "NO_COLOR": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    env.pop("REVIEWFLOW_DB", None)
    argv = [sys.executable, "-m", "reviewflow", "run", str(EXAMPLE), "--db", "rf.db", "--json"]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return done, json.loads(done.stdout)


def tasks_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["tasks"]}


def base_repo(root: Path) -> Path:
    return make_repo(root, {"calc.py": CALC, "tests/test_calc.py": TEST_CALC})


def test_a_clean_change_passes_and_the_summary_names_each_verdict(tmp_path: Path) -> None:
    repo = base_repo(tmp_path / "repo")
    branch_with(
        repo,
        {"calc.py": CALC + MUL, "tests/test_calc.py": TEST_CALC + TEST_MUL, "README.md": README},
    )

    done, doc = run_example(tmp_path, repo)

    assert done.returncode == 0, done.stderr
    assert doc["state"] == "succeeded"
    tasks = tasks_of(doc)
    assert {name: t["state"] for name, t in tasks.items()} == {
        "security": "succeeded",
        "pr": "succeeded",
        "summary": "succeeded",
    }
    summary = tasks["summary"]["result"]
    # bandit notes the test's `assert` (B101, info): the security review comments on it.
    assert {name: r["verdict"] for name, r in summary["reviews"].items()} == {
        "security": "comment",
        "pr": "approve",
    }
    assert summary["verdict"] == "comment"  # the worse of the two
    for name in ("security", "pr"):
        report = tmp_path / ".reviewflow" / "example" / name / "report.json"
        assert json.loads(report.read_text())["template"] == name
    text = (tmp_path / summary["report"]).read_text()
    assert "# Review summary: comment" in text
    assert "| security | comment | 0 | 0 |" in text
    assert "| pr | approve | 0 | 0 |" in text


def test_a_secret_fails_the_security_review_and_the_summary_still_reports_both(
    tmp_path: Path,
) -> None:
    """failure_policy continue + trigger all_done: the pr review still runs, the summary
    names both verdicts, the run fails (exit 1), and the secret is not shown anywhere."""
    repo = base_repo(tmp_path / "repo")
    key = "AKIA" + "Q7XK2M9PLW4RZT8N"
    branch_with(
        repo,
        {
            "calc.py": CALC + MUL + f'\n\nREGION_KEY = "{key}"\n',
            "tests/test_calc.py": TEST_CALC + TEST_MUL,
            "README.md": README,
        },
    )

    done, doc = run_example(tmp_path, repo)

    assert done.returncode == 1, done.stderr
    assert doc["state"] == "failed"
    tasks = tasks_of(doc)
    assert tasks["security"]["state"] == "failed"
    assert tasks["security"]["attempts"] == 1  # exit 1 is an answer: not retried
    assert tasks["pr"]["state"] == "succeeded"
    summary = tasks["summary"]["result"]
    assert summary["verdict"] == "request_changes"
    security = summary["reviews"]["security"]
    assert security["verdict"] == "request_changes"
    assert security["errors"] >= 1
    assert summary["reviews"]["pr"]["verdict"] == "approve"
    text = (tmp_path / summary["report"]).read_text()
    assert "# Review summary: request_changes" in text
    assert "| pr | approve |" in text
    assert "## security: request_changes" in text
    assert key not in text and key not in done.stdout
