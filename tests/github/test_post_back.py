"""A review run started for a pull request fetches a private repository with the credential
helper and posts its result back: check run in progress, then completed with the verdict and
annotations, and the report comment — once, however often it runs. The token is found nowhere
it must not be: the database, the logs, the spec, the checkout's git config."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fakegithub import PR, REPO, TOKEN, FakeGitHub
from githttp import PrivateGitServer

from reviewflow.engine import Engine
from reviewflow.server.review_run import PostBack, review_spec
from reviewflow.store import SQLiteStore

CONCLUSION = {"approve": "success", "comment": "neutral", "request_changes": "failure"}
IDENT = ["-c", "user.email=t@example.com", "-c", "user.name=t"]


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _private_repo(root: Path) -> tuple[str, str]:
    """A bare repository served as octo-org/octo-repo: base, then a head adding a README."""
    src = root / "src"
    src.mkdir()
    _git(src, "init", "-q")
    (src / "notes.txt").write_text("base\n")
    _git(src, "add", ".")
    _git(src, *IDENT, "commit", "-q", "-m", "base")
    base = _git(src, "rev-parse", "HEAD")
    (src / "README.md").write_text(
        "# Widgets\n\nThe widgets library draws widgets on a screen. It is small and fast.\n"
    )
    _git(src, "add", ".")
    _git(src, *IDENT, "commit", "-q", "-m", "head")
    head = _git(src, "rev-parse", "HEAD")
    bare = root / "repos" / "octo-org" / "octo-repo.git"
    bare.parent.mkdir(parents=True)
    _git(root, "clone", "-q", "--bare", str(src), str(bare))
    return base, head


def _run(
    tmp_path: Path, server: PrivateGitServer, fake: FakeGitHub, run_id: str, sha: str, base: str
) -> tuple[str, SQLiteStore]:
    spec = review_spec(
        template="content",
        repo_url=f"{server.url}/octo-org/octo-repo.git",
        sha=sha,
        base=base,
        base_url=None,
        run_id=run_id,
        work_dir=tmp_path / "work",
        reviewflow=[sys.executable, "-m", "reviewflow"],
        post_back=PostBack(
            repo=REPO, pr=PR, details_url=f"http://127.0.0.1:1/ui/runs/{run_id}", api_url=fake.url
        ),
    )
    store = SQLiteStore(tmp_path / "server.db")
    engine = Engine(store, runs_dir=tmp_path / "runs", flush_interval=0.01)
    state = asyncio.run(engine.run(spec, run_id=run_id))
    return str(state), store


def test_a_private_pull_request_is_reviewed_and_its_result_posted_once(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, head = _private_repo(tmp_path)
    with PrivateGitServer(tmp_path / "repos", TOKEN) as server:
        monkeypatch.setenv("GITHUB_SERVER_URL", server.url)
        monkeypatch.setenv("HOME", str(tmp_path))  # no user git config
        state, store = _run(tmp_path, server, fake_github, "r1", head, base)
        try:
            tasks = {t.name: t.state for t in store.get_tasks("r1")}
        finally:
            store.close()
        verdict = json.loads((tmp_path / "work/r1/report/report.json").read_text())["verdict"]
        # The run ends as the review did (it fails on request_changes); every post-back ran.
        assert state == ("failed" if verdict == "request_changes" else "succeeded"), tasks
        assert {tasks[t] for t in ("check-start", "check-finish", "comment")} == {"succeeded"}
        # The check run: in progress first (with the run's page as details), then completed.
        (check,) = fake_github.runs_for(head)
        assert check["status"] == "completed"
        assert check["conclusion"] == CONCLUSION[verdict]
        assert check["details_url"] == "http://127.0.0.1:1/ui/runs/r1"
        statuses = [
            r.body.get("status")
            for r in fake_github.calls()
            if "check-runs" in r.path and r.method in ("POST", "PATCH")
        ]
        assert statuses[0] == "in_progress" and statuses[-1] == "completed"
        (comment,) = fake_github.comments[PR]
        assert comment["body"].startswith("<!-- reviewflow:report -->")
        # A second run of the same head (a redelivery, a re-run) updates; nothing doubles.
        again, store = _run(tmp_path, server, fake_github, "r2", head, base)
        store.close()
        assert again == state
        assert len(fake_github.runs_for(head)) == 1
        assert len(fake_github.comments[PR]) == 1
    # The token went to git through the helper only: nowhere on disk.
    for path in tmp_path.rglob("*"):
        if path.is_file() and "repos" not in path.parts and "src" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_review_without_a_report_completes_the_check_as_failed(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, head = _private_repo(tmp_path)
    with PrivateGitServer(tmp_path / "repos", "another-password") as server:
        monkeypatch.setenv("GITHUB_SERVER_URL", server.url)
        monkeypatch.setenv("HOME", str(tmp_path))
        state, store = _run(tmp_path, server, fake_github, "r1", head, base)
        try:
            tasks = {t.name: t.state for t in store.get_tasks("r1")}
        finally:
            store.close()
    # The fetch is refused (wrong credentials), so no review: the check says so, no comment.
    assert state == "failed"
    assert tasks["check-finish"] == "succeeded"
    assert tasks["comment"] in ("failed", "skipped")
    (check,) = fake_github.runs_for(head)
    assert check["conclusion"] == "failure"
    assert "without a report" in check["output"]["summary"]
    assert PR not in fake_github.comments


def test_the_review_task_inherits_none_of_the_servers_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review runs the pull request's code (its tests): the server's own credentials,
    whatever their names, are not in its environment; what runs the tools is."""
    from reviewflow.executors.shell import inherited

    secrets = {
        "REVIEWFLOW_API_TOKENS": "t1",
        "HOOK_SECRET": "s1",
        "SMTP_PASSWORD": "p1",
        "PGPASSWORD": "p2",
        "DATABASE_URL": "postgresql://u:p@h/db",
        "AWS_SECRET_ACCESS_KEY": "a1",
        "GITHUB_TOKEN": "g1",
        "REVIEWFLOW_GITHUB_APP_KEY_FILE": "/k.pem",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    spec = review_spec(
        template="pr",
        repo_url="https://github.com/octo-org/octo-repo.git",
        sha="a" * 40,
        base="b" * 40,
        base_url=None,
        run_id="r1",
        work_dir=tmp_path,
        reviewflow=["reviewflow"],
        post_back=PostBack(repo=REPO, pr=PR),
    )
    task = spec.tasks["review"]
    env = {**inherited(task.inherit_env), **task.env}
    assert {name: env.get(name) for name in secrets if env.get(name)} == {}
    assert env["PATH"] and env["LC_ALL"] == "C.UTF-8"
