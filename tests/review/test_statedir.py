"""`.reviewflow/` never shows in `git status`: reviewflow ignores the folder it creates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import commit, git, make_repo, write
from reviewproc import run_review, user_template

from reviewflow.statedir import make_dirs

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

QUIET = {"checks": {"tests": {"when": "never"}}}


def untracked(repo: Path) -> list[str]:
    return git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()


def test_a_review_run_inside_the_repository_leaves_git_status_clean(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# project\n", "calc.py": "X = 1\n"})
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, {"calc.py": "X = 2\n"})
    commit(repo)
    quiet = user_template(tmp_path, "quiet", QUIET)
    done = run_review(repo, ".", "--template", quiet, db=False)  # default db, logs, reports
    assert done.code in (0, 1), str(done)
    state = repo / ".reviewflow"
    assert (state / "reviewflow.db").is_file()
    assert list((state / "runs").iterdir()) and list((state / "reviews").iterdir())
    assert untracked(repo) == []
    assert "*" in (state / ".gitignore").read_text(encoding="utf-8").splitlines()
    git(repo, "add", "-A")  # what a user types next commits nothing of reviewflow's
    assert git(repo, "diff", "--cached", "--name-only") == ""
    # ... except the project's word list, which the content template reads from there
    write(repo, {".reviewflow/words.txt": "reviewflow\n"})
    assert untracked(repo) == ["?? .reviewflow/words.txt"]


def test_a_workflow_run_inside_a_repository_leaves_git_status_clean(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write(repo, {"wf.yaml": "name: hello\ntasks:\n  hi: {type: shell, run: [echo, hi]}\n"})
    commit(repo)
    done = subprocess.run(
        [sys.executable, "-m", "reviewflow", "run", "wf.yaml"],
        cwd=repo,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((repo / ".reviewflow" / "runs").rglob("hi.1.log"))
    assert untracked(repo) == []


def test_a_reviewflow_folder_the_user_made_is_left_as_it_is(tmp_path: Path) -> None:
    """A committed word list in `.reviewflow/` stays visible to git: no `*` is written there."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# p\n", ".reviewflow/words.txt": "rfx\n"})
    make_dirs(repo / ".reviewflow" / "runs" / "r1")
    assert not (repo / ".reviewflow" / ".gitignore").exists()
    write(repo, {".reviewflow/notes.txt": "mine\n"})
    assert untracked(repo) == ["?? .reviewflow/notes.txt"]


def test_only_the_state_folder_is_ignored_not_its_parents(tmp_path: Path) -> None:
    made = make_dirs(tmp_path / "a" / ".reviewflow" / "reviews" / "x")
    assert made.is_dir()
    assert (tmp_path / "a" / ".reviewflow" / ".gitignore").is_file()
    assert not (tmp_path / "a" / ".gitignore").exists()
    assert not (made / ".gitignore").exists()
