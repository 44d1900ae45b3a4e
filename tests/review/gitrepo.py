"""Throwaway git repositories for review tests: real `git init`, real commits."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reviewflow.review.change import EMPTY_TREE, Change, ChangedFile, collect_change

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(root: Path, *args: str) -> str:
    """Run git in `root` and return its stdout (raises on failure)."""
    import os

    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    """Write text files (folders created as needed)."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def commit(root: Path, message: str = "change") -> str:
    """Stage everything and commit; returns the new commit id."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", message)
    return git(root, "rev-parse", "HEAD")


def make_repo(root: Path, base_files: dict[str, str] | None = None) -> Path:
    """A repository on branch main with one commit of `base_files` (a README if none)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write(root, base_files or {"README.md": "# project\n"})
    commit(root, "base")
    return root


def branch_with(root: Path, files: dict[str, str], name: str = "feature") -> Change:
    """Check out a branch off main, commit `files` there, and collect the change vs main."""
    git(root, "checkout", "-q", "-b", name)
    write(root, files)
    commit(root, name)
    return collect_change(root)


def change_of(root: Path, files: list[ChangedFile]) -> Change:
    """A Change made by hand (no git): uncommitted work against the empty tree."""
    return Change(
        root=str(root), base=EMPTY_TREE, base_ref="test", head=None, dirty=True, files=files
    )
