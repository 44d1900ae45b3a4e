"""The tools' TMPDIR of a check: known by name for cleanup, never plantable by another user."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from reviewflow.review.runner import _tools_tmp


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_the_folder_is_in_a_private_parent_and_a_lost_attempts_files_are_removed(
    tmp_root: Path,
) -> None:
    first = _tools_tmp("run-1", "tests")
    first.mkdir()
    (first / "left-by-a-killed-attempt").write_text("x")
    again = _tools_tmp("run-1", "tests")
    assert again == first and not again.exists()
    parent = tmp_root / f"reviewflow-{os.getuid()}"
    assert again.parent == parent
    # Nobody else may create anything there; anyone may pass through (a tool that drops
    # privileges to start a database reaches its own folder).
    assert stat.S_IMODE(parent.stat().st_mode) == 0o711


def test_a_parent_others_can_write_is_not_used(tmp_root: Path) -> None:
    parent = tmp_root / f"reviewflow-{os.getuid()}"
    parent.mkdir()
    parent.chmod(0o777)
    planted = parent / "run-1-tests"
    planted.mkdir()
    folder = _tools_tmp("run-1", "tests")
    assert folder.parent == tmp_root and folder.name.startswith("reviewflow-tests-")
    assert planted.exists()  # someone else's folder is neither used nor removed


def test_a_link_in_place_of_the_parent_is_not_followed(tmp_root: Path) -> None:
    elsewhere = tmp_root / "elsewhere"
    elsewhere.mkdir(mode=0o711)
    (tmp_root / f"reviewflow-{os.getuid()}").symlink_to(elsewhere)
    folder = _tools_tmp("run-1", "tests")
    assert not folder.is_relative_to(elsewhere) and folder.parent == tmp_root
