"""The shell blocks of README.md and docs/*.md marked `<!-- runnable -->` run as a reader runs
them: pasted into bash at the top of a fresh clone (a copy of the repository's tracked files in a
temporary folder), with the `reviewflow` of this checkout on PATH and nothing else configured.
Each must exit 0, within a bound that only keeps a hung block from hanging the suite.

Mark a block by putting `<!-- runnable -->` on the line right before its ```bash fence (GitHub
hides the comment). Mark only blocks that run here in seconds, offline, with no server, no
PostgreSQL and no `pip install`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdblocks import ROOT, Block, blocks, doc_pages

SHELLS = ("bash", "sh", "shell")
BLOCK_TIMEOUT = 240  # a bound against hangs, not a speed target
BASH = shutil.which("bash")


def runnable_blocks() -> list[Block]:
    return [b for page in doc_pages() for b in blocks(page) if b.runnable]


def tracked_files() -> list[str]:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return [name for name in done.stdout.decode().split("\0") if name]


@pytest.fixture(scope="module")
def clone_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout (git ls-files) to know what a clone holds")
    return tracked_files()


def fresh_clone(dest: Path, files: list[str]) -> Path:
    """The tracked files as they are in the work tree (the docs under test included)."""
    for name in files:
        src = ROOT / name
        if src.is_file():  # a file deleted in the work tree is not in the next clone either
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def reader_env(home: Path) -> dict[str, str]:
    """A shell with this checkout's `reviewflow` first on PATH and none of the caller's
    reviewflow settings (a reader's defaults: `.reviewflow/reviewflow.db` in the clone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVIEWFLOW_", "COV_"))}
    bin_dir = str(Path(sys.executable).parent)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HOME=str(home), NO_COLOR="1")
    return env


def run_block(text: str, clone: Path, home: Path) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    script = home / "block.sh"
    script.write_text(text, encoding="utf-8")
    return subprocess.run(
        [BASH, "--noprofile", "--norc", "-e", "-o", "pipefail", str(script)],
        cwd=clone,
        env=reader_env(home),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def test_some_blocks_are_marked_and_all_marked_blocks_are_shell() -> None:
    marked = runnable_blocks()
    assert marked, "no block carries <!-- runnable -->: the docs' commands are not checked"
    for b in marked:
        assert b.lang in SHELLS, f"{b.where}: only shell blocks can be marked runnable"


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
@pytest.mark.timeout(BLOCK_TIMEOUT + 60)
@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.where)
def test_runnable_block_exits_0(block: Block, clone_files: list[str], tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone", clone_files)
    home = tmp_path / "home"
    home.mkdir()
    done = run_block(block.text, clone, home)
    shown = f"{block.where} exited {done.returncode}\n{block.text}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, shown
    assert "Traceback" not in done.stderr, shown


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_a_failing_command_in_a_block_fails_it(tmp_path: Path) -> None:
    """`bash -e -o pipefail`: a block that breaks in its middle is not rescued by its last line."""
    (tmp_path / "home").mkdir()
    (tmp_path / "clone").mkdir()
    middle = "reviewflow validate examples/missing.yaml\necho still here\n"
    done = run_block(middle, tmp_path / "clone", tmp_path / "home")
    assert done.returncode == 2 and "still here" not in done.stdout
    piped = "reviewflow graph examples/missing.yaml | cat\n"
    assert run_block(piped, tmp_path / "clone", tmp_path / "home").returncode == 2


def test_the_marker_must_be_right_before_the_fence(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- runnable -->\n```bash\ntrue\n```\n\n<!-- runnable -->\n\n```bash\nfalse\n```\n"
        "```bash\nls\n```\n",
        encoding="utf-8",
    )
    found = [(b.line, b.lang, b.text, b.runnable) for b in blocks(page)]
    assert found == [
        (2, "bash", "true\n", True),
        (8, "bash", "false\n", False),
        (11, "bash", "ls\n", False),
    ]
