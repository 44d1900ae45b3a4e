"""The review run of a repository checkout (reviewflow.server.review_run), what a template run
and a GitHub webhook start: only plain https clone URLs and 40-hex commits get into its argv,
its run id is deterministic and valid for any repository name, and its git steps really fetch
and check out both commits. Through the webhook: tests/server/test_webhooks.py."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reviewflow.engine import Engine
from reviewflow.server.review_run import (
    BadParam,
    clone_url,
    commit,
    repo_from_url,
    review_run_id,
    review_spec,
)
from reviewflow.store import SQLiteStore

HEAD = "1" * 40


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://github.com/o/r", "must be https"),
        ("file:///etc", "must be https"),
        ("--upload-pack=evil", "must be https"),
        ("https://u:p@github.com/o/r", "credentials"),
        ("https://token@github.com/o/r", "credentials"),
        ("https://github.com/o/r?x=1", "a query"),
        ("https://github.com/o/r#main", "a fragment"),
        ("https://github.com/o r", "blanks/control characters"),
        ("https://github.com/o/r\n", "blanks/control characters"),
        ("https://[::1/r", "not a URL"),
        ("", "missing"),
        (None, "missing"),
        (["https://github.com/o/r"], "missing"),
    ],
)
def test_a_clone_url_is_plain_https_or_refused_naming_the_field(url: Any, words: str) -> None:
    """The URL becomes an argument of `git fetch`: an option, a local path or a URL carrying
    a token would be worse than a failed fetch."""
    with pytest.raises(BadParam) as info:
        clone_url(url, "params.repo_url")
    assert info.value.field == "params.repo_url" and words in str(info.value)


def test_plain_https_urls_pass_unchanged_and_name_their_repository() -> None:
    for url, repo in [
        ("https://github.com/o/r.git", "o/r"),
        ("https://git.example:8443/group/sub/r", "sub/r"),
        ("https://git.example/", "git.example"),
    ]:
        assert clone_url(url, "f") == url
        assert repo_from_url(url) == repo


def test_a_commit_is_40_hex_digits_in_lower_case() -> None:
    assert commit("ABCDEF" + "0" * 34, "params.sha") == "abcdef" + "0" * 34
    for bad in ("a" * 39, "g" * 40, 12, None, "a" * 40 + "\n"):
        with pytest.raises(BadParam) as info:
            commit(bad, "params.sha")
        assert info.value.field == "params.sha"


def test_run_ids_stay_valid_for_long_names() -> None:
    long = review_run_id("o" * 39 + "/" + "r" * 100, 10**9, HEAD)
    assert len(long) <= 200 and long.endswith(f"-pr1000000000-{HEAD}")
    assert review_run_id("a b/c~d", 1, HEAD) == f"gh-a_b.c_d-pr1-{HEAD}"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_checkout_steps_fetch_both_commits_of_a_real_repository(tmp_path: Path) -> None:
    """The git tasks against a local repository (file://, which only tests may use), with
    `echo` standing in for `reviewflow review`."""
    src = tmp_path / "src"
    src.mkdir()
    _git(src, "init", "-q")
    ident = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    _git(src, *ident, "commit", "-q", "--allow-empty", "-m", "base")
    base = _git(src, "rev-parse", "HEAD")
    (src / "f.py").write_text("x = 1\n")
    _git(src, "add", "f.py")
    _git(src, *ident, "commit", "-q", "-m", "head")
    head = _git(src, "rev-parse", "HEAD")
    spec = review_spec(
        template="pr",
        repo_url=f"file://{src}",
        sha=head,
        base=base,
        base_url=None,
        run_id="r1",
        work_dir=tmp_path / "work",
        reviewflow=["echo"],
    )
    store = SQLiteStore(tmp_path / "db.sqlite")
    try:
        engine = Engine(store, runs_dir=tmp_path / "runs", flush_interval=0.01)
        state = asyncio.run(engine.run(spec, run_id="r1"))
        assert state == "succeeded", store.get_tasks("r1")
    finally:
        store.close()
    checkout = tmp_path / "work" / "r1" / "repo"
    assert _git(checkout, "rev-parse", "HEAD") == head
    assert _git(checkout, "cat-file", "-t", base) == "commit"
    assert (checkout / "f.py").read_text() == "x = 1\n"
    log = (tmp_path / "runs" / "r1" / "review.1.log").read_text()
    assert f"review {checkout} --base {base} --template pr" in log
