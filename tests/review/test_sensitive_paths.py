"""Sensitive paths are words in names, not substrings: `keys.py` holds no key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, make_repo
from reviewproc import run_review, user_template

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.mark.parametrize(
    ("files", "scanned"),
    [
        ({"keys.py": "KEYS = ['up', 'down']\n"}, False),
        ({"secrets.py": "def load():\n    return None\n"}, True),
        ({"credentials.json": "{}\n"}, True),
        ({"deploy/id_rsa": "not a key\n"}, True),
        ({".env": "DEBUG=1\n"}, True),
    ],
    ids=["keys.py", "secrets.py", "credentials.json", "id_rsa", ".env"],
)
def test_the_pr_template_scans_for_secrets_only_when_a_sensitive_file_changed(
    tmp_path: Path, files: dict[str, str], scanned: bool
) -> None:
    repo = make_repo(tmp_path / "repo")
    branch_with(repo, files)
    quiet = user_template(tmp_path, "quiet", {"checks": {"tests": {"when": "never"}}})
    done = run_review(tmp_path, repo, "--template", quiet, out=tmp_path / "out")
    assert done.code in (0, 1), str(done)
    ran = set(done.report["checks"])
    assert ({"security", "secrets"} <= ran) is scanned, ran
    assert ({"security", "secrets"} & ran == set()) is not scanned, ran
