"""What the wheel ships: the package's type information (PEP 561 `py.typed`) and every module of
the CLI package. Built offline with hatchling, as `pip install` would."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_py_typed_and_the_cli_package(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    done = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("reviewflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "reviewflow/py.typed" in names
    assert {"reviewflow/cli/__init__.py", "reviewflow/cli/common.py"} <= names
    assert not any(n.startswith("reviewflow/cli_") for n in names)  # the old flat modules
