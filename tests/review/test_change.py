"""What changed (`review/change.py`), on throwaway repositories with real git: which files,
with what status, and which of their lines are new. Every check of a review reads this: a line
wrongly called new blames the change for old debt, a file left out is not reviewed at all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitrepo import branch_with, commit, git, make_repo, write

from reviewflow.review.change import (
    EMPTY_TREE,
    ChangeError,
    collect_change,
    path_matches,
    path_words,
    unquote_path,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

OLD_DEBT = (
    "import os\n\n\ndef add(a, b):\n    return a + b\n\n\ndef _sub(a, b):\n    return a - b\n"
)
NO_SUB = "import os\n\n\ndef add(a, b):\n    return a + b\n"


# ------------------------------------------------------------------------------ lines


def test_a_file_whose_hunks_only_delete_lines_has_no_changed_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": OLD_DEBT, "logo.bin": "a\0b"})
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, {"calc.py": NO_SUB, "logo.bin": "a\0c"})
    commit(repo)
    change = collect_change(repo)
    calc = change.get("calc.py")
    assert calc is not None and calc.status == "modified"
    assert calc.lines == [] and calc.deletions_only
    assert not change.touches("calc.py", 1)
    assert change.touches("calc.py", None)  # a finding about the whole file still counts
    logo = change.get("logo.bin")  # binary to git: no hunks, nothing known, everything counts
    assert logo is not None and not logo.deletions_only and change.touches("logo.bin", 1)


def test_a_file_with_added_lines_counts_only_those(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": NO_SUB})
    change = branch_with(repo, {"calc.py": OLD_DEBT})
    calc = change.get("calc.py")
    assert calc is not None and calc.lines == [(6, 9)] and not calc.deletions_only
    assert not change.touches("calc.py", 1) and change.touches("calc.py", 8)


# ------------------------------------------------------------------------------ files


def test_renamed_deleted_and_untracked_files_have_their_status(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"old.py": "X = 1\n" * 20, "gone.py": "Y = 2\n"})
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "mv", "old.py", "new.py")
    git(repo, "rm", "-q", "gone.py")
    commit(repo)
    write(repo, {"fresh.py": "a = 1\nb = 2\nc = 3"})  # never added to git, no final newline
    change = collect_change(repo)
    assert [(f.path, f.status, f.old_path) for f in change.files] == [
        ("fresh.py", "added", None),
        ("gone.py", "deleted", None),
        ("new.py", "renamed", "old.py"),
    ]
    fresh = change.get("fresh.py")
    assert fresh is not None and fresh.lines == [(1, 3)]
    renamed = change.get("new.py")
    assert renamed is not None and renamed.lines == []  # a pure rename adds no line
    assert [f.path for f in change.present()] == ["fresh.py", "new.py"]


@pytest.mark.parametrize(
    "name", ['say "hi".py', "naïve.py", "back\\slash.py", "tab\there.py", "a b.py"]
)
def test_names_git_quotes_keep_their_new_lines(tmp_path: Path, name: str) -> None:
    repo = make_repo(tmp_path / "repo")
    change = branch_with(repo, {name: "one = 1\ntwo = 2\n"})
    changed = change.get(name)
    assert changed is not None, [f.path for f in change.files]
    assert changed.status == "added" and changed.lines == [(1, 2)]


def test_unquote_path_undoes_gits_c_quoting() -> None:
    assert unquote_path(b'"say \\"hi\\".py"') == 'say "hi".py'
    assert unquote_path(b'"na\\303\\257ve.py"') == "naïve.py"
    assert unquote_path(b'"tab\\there.py"') == "tab\there.py"
    assert unquote_path(b"plain.py") == "plain.py"


def test_reviewflows_own_state_and_excluded_folders_are_not_part_of_the_change(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    branch_with(repo, {"app.py": "x = 1\n"})
    write(repo, {".reviewflow/rf.db": "x", "sub/.reviewflow/log.txt": "x", "vendor/lib.py": "x"})
    change = collect_change(repo, exclude=("vendor/",))
    assert [f.path for f in change.files] == ["app.py"] and not change.dirty
    assert "vendor/lib.py" in collect_change(repo).paths()


# ------------------------------------------------------------------------------ the base


def test_a_branch_is_compared_with_its_merge_base_with_main(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    fork = git(repo, "rev-parse", "HEAD")
    branch_with(repo, {"a.py": "a = 1\n"})
    git(repo, "checkout", "-q", "main")
    write(repo, {"later.py": "on main after the fork\n"})
    commit(repo)
    git(repo, "checkout", "-q", "feature")
    change = collect_change(repo)
    assert (change.base, change.base_ref) == (fork, "merge-base with main")
    assert [f.path for f in change.files] == ["a.py"]


def test_on_main_a_clean_tree_is_its_last_commit_and_a_dirty_one_its_uncommitted_work(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    first = collect_change(repo)
    assert (first.base, first.base_ref) == (EMPTY_TREE, "empty tree (initial commit)")
    assert [f.path for f in first.files] == ["README.md"]
    parent = git(repo, "rev-parse", "HEAD")
    write(repo, {"b.py": "b = 1\n"})
    head = commit(repo)
    clean = collect_change(repo)
    assert (clean.base, clean.base_ref) == (parent, "HEAD~1")
    write(repo, {"c.py": "c = 1\n"})
    dirty = collect_change(repo)
    # HEAD is main's tip: the uncommitted work alone is the change.
    assert (dirty.base, dirty.dirty) == (head, True)
    assert [f.path for f in dirty.files] == ["c.py"]


def test_an_explicit_base_must_exist_and_a_folder_must_be_a_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(ChangeError, match="--base nope: no such commit in "):
        collect_change(repo, base="nope")
    # A range is not a commit: it was once taken as its right end (`feature`, an empty change).
    branch_with(repo, {"new.py": "x = 1\n"})
    for spelled in ("main..feature", "main...feature"):
        with pytest.raises(ChangeError, match=f"--base {spelled}: no such commit in "):
            collect_change(repo, base=spelled)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ChangeError, match="not a git repository"):
        collect_change(plain)
    with pytest.raises(ChangeError, match="no such directory"):
        collect_change(tmp_path / "missing")


# ------------------------------------------------------------------------------ paths


def test_a_change_against_an_explicit_base_takes_three_git_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD and the base in one rev-parse, the status, one diff for the files and their lines:
    `reviewflow review` waits for these before its run exists (docs/benchmarks.md, "Start-up:
    spawn → run created"). GIT_TRACE makes every git process say what it runs."""
    repo = make_repo(tmp_path / "repo", {"calc.py": OLD_DEBT})
    branch_with(repo, {"calc.py": NO_SUB, "new.py": "x = 1\n"})
    write(repo, {"untracked.py": "y = 2\n"})
    trace = tmp_path / "git-trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    change = collect_change(repo, base="main", root=repo)
    commands = [
        line.split("trace: built-in: git ", 1)[1].split()[0]
        for line in trace.read_text().splitlines()
        if "trace: built-in: git " in line
    ]
    assert commands == ["rev-parse", "status", "diff"]
    assert [(f.path, f.status) for f in change.files] == [
        ("calc.py", "modified"),
        ("new.py", "added"),
        ("untracked.py", "added"),
    ]
    assert change.base_ref == "main" and change.dirty


def test_path_words_split_names_at_punctuation_and_humps() -> None:
    assert path_words("src/AuthService/api_key.py") == {
        "src",
        "auth",
        "service",
        "api",
        "key",
        "py",
    }
    assert path_matches("deploy/server.key", ["word:key"])
    assert not path_matches("keys.py", ["word:key"]) and path_matches("keys.py", ["*key*"])
