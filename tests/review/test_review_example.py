"""The main job: `reviewflow run examples/review.yaml` reviews the repository it runs in.

Each test builds a small real git repository, runs the example workflow on it through the CLI
(in-process) and checks what a reviewer relies on: clean code passes, planted problems fail the
right check with the file named, and the summary report lists every check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import structlog
from typer.testing import CliRunner

from reviewflow.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "review.yaml"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    structlog.reset_defaults()


def make_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir()
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": str(root),
    }
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(argv, cwd=root, check=True, env=env)
    return root


def review(repo: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict]:
    monkeypatch.chdir(repo)
    db = repo.parent / "rf.db"
    result = CliRunner().invoke(
        app, ["run", str(EXAMPLE), "--db", str(db), "--json", "--run-id", "r1"]
    )
    return result.exit_code, json.loads(result.stdout)


CLEAN = {
    "README.md": "# demo\n\nInstall: pip install .\n\nUsage: demo --help\n",
    "src/demo.py": "def add(a, b):\n    return a + b  # TODO: types\n",
}


@needs_git
def test_clean_repository_passes_every_check(tmp_path, monkeypatch):
    code, doc = review(make_repo(tmp_path / "repo", CLEAN), monkeypatch)
    assert code == 0
    states = {t["name"]: t["state"] for t in doc["tasks"]}
    assert set(states.values()) == {"succeeded"}, states
    results = {t["name"]: t["result"] for t in doc["tasks"]}
    assert results["syntax"]["python_files"] == 1
    assert results["todos"]["count"] == 1
    assert results["docs"]["missing_topics"] == []
    assert results["git-state"]["exit_code"] == 0 and "init" in results["git-state"]["output_tail"]
    report = Path(results["summary"]["report"])
    text = report.read_text()
    assert "**7/7 checks passed**" in text
    for check in ("syntax", "secrets", "large-files", "style", "todos", "docs", "git-state"):
        assert f"## {check}: passed" in text


@needs_git
def test_planted_problems_fail_their_checks_and_the_run(tmp_path, monkeypatch):
    fake_key = "AKIA" + "ABCDEFGHIJKLMNOP"
    files = {
        **CLEAN,
        "src/broken.py": "def f(:\n    pass\n",
        "config/settings.py": f'KEY = "{fake_key}"\n',
        "blob.bin": b"\0" * (1100 * 1024),
        "src/messy.py": "x = 1   \n",
    }
    code, doc = review(make_repo(tmp_path / "repo", files), monkeypatch)
    assert code == 1
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert tasks["syntax"]["state"] == "failed"
    assert "src/broken.py:1" in tasks["syntax"]["error"]
    assert tasks["secrets"]["state"] == "failed"
    assert "config/settings.py:1: AWS access key" in tasks["secrets"]["error"]
    assert tasks["large-files"]["state"] == "failed"
    assert "blob.bin" in tasks["large-files"]["error"]
    # A blocking finding is not retried: one attempt each.
    assert tasks["syntax"]["attempts"] == 1 and tasks["secrets"]["attempts"] == 1
    # style is advice only; it reports the trailing whitespace but passes.
    assert tasks["style"]["state"] == "succeeded"
    assert tasks["style"]["result"]["counts"]["trailing_whitespace"] == 1
    # failure_policy continue + trigger all_done: the summary still reports every check.
    assert tasks["summary"]["state"] == "succeeded"
    assert tasks["summary"]["result"]["failed"] == ["large-files", "secrets", "syntax"]
    report = Path(tasks["summary"]["result"]["report"]).read_text()
    assert "**4/7 checks passed** — failed: large-files, secrets, syntax" in report
    assert "## syntax: FAILED" in report and "src/broken.py:1" in report
    assert doc["state"] == "failed"


@needs_git
def test_repository_without_readme_fails_docs(tmp_path, monkeypatch):
    code, doc = review(make_repo(tmp_path / "repo", {"a.py": "x = 1\n"}), monkeypatch)
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert code == 1
    assert tasks["docs"]["state"] == "failed"
    assert "no README" in tasks["docs"]["error"]


def test_checks_work_outside_a_git_repository(tmp_path, monkeypatch):
    """Without git metadata the checks walk the tree, skipping tool folders."""
    from reviewflow.review import legacy as checks

    root = tmp_path / "plain"
    (root / ".venv").mkdir(parents=True)
    (root / ".venv" / "bad.py").write_text("def (:\n")
    (root / "ok.py").write_text("x = 1\n")
    files = checks.tracked_files(root)
    assert [f.name for f in files] == ["ok.py"]

    ctx = SimpleNamespace(params={"path": str(root), "strict": True})
    assert checks.syntax(ctx)["python_files"] == 1
    (root / "ok.py").write_text("x = 1   \n")
    with pytest.raises(checks.CheckFailed, match="trailing whitespace"):
        checks.style(ctx)
