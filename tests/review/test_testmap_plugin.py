"""The pytest plugin that names coverage's contexts for the coverage map
(`review/testmap_plugin.py`), in a real `coverage run -m pytest` of a small project: each test's
lines under its node id, a shared fixture's setup under `fixture:<name>` (it counts for every
test using it, not only the first), import time under no name, a test's child processes under
the test's name, and a file listing every collected test and the shared fixtures each used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reviewflow.review.checks import testmap

pytest.importorskip("coverage")
from coverage import CoverageData

FILES = {
    "calc.py": (
        "LIMIT = 10\n"  # line 1: import time
        "\n\n"
        "def add(a, b):\n"
        "    return a + b\n"  # line 5
        "\n\n"
        "def prepare():\n"
        "    return {'ready': True}\n"  # line 9
        "\n\n"
        "def in_child():\n"
        "    return 'child'\n"  # line 13
    ),
    "tests/conftest.py": (
        "import pytest\n\nimport calc\n\n\n"
        "@pytest.fixture(scope='module')\n"
        "def shared():\n    return calc.prepare()\n"
    ),
    "tests/test_calc.py": (
        "import subprocess\nimport sys\n\nimport calc\n\n\n"
        "def test_one(shared):\n    assert shared['ready']\n\n\n"
        "def test_two(shared, tmp_path):\n    assert shared['ready']\n\n\n"
        "def test_add():\n    assert calc.add(1, 2) == 3\n\n\n"
        "def test_child():\n"
        "    code = 'import calc; assert calc.in_child() == \"child\"'\n"
        "    subprocess.run([sys.executable, '-c', code], check=True, cwd='.')\n"
    ),
}
ONE, TWO, ADD, CHILD = (f"tests/test_calc.py::test_{n}" for n in ("one", "two", "add", "child"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One recording run: the plugin's file and the contexts of calc.py's lines."""
    base = tmp_path_factory.mktemp("plugin")
    root = base / "project"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    data = base / ".coverage"
    rec = testmap.recorder(base, data, root)
    outer = ("COVERAGE_", "COV_CORE_", "PYTEST_")  # this suite's own coverage and options
    env = {k: v for k, v in os.environ.items() if not k.startswith(outer)}
    env.update(rec.env, PYTHONPATH=str(root))
    argv = [sys.executable, "-m", "coverage", "run", f"--data-file={data}", f"--source={root}"]
    argv += ["-m", "pytest", "-q", *rec.pytest_args, "tests"]
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [side] = rec.folder.glob("tests-*.json")
    contexts: dict[int, set[str]] = {}
    for path in [data, *rec.folder.glob("subprocess.coverage.*")]:
        measured = CoverageData(basename=str(path))
        measured.read()
        for name in measured.measured_files():
            if Path(name).name == "calc.py":
                for line, names in measured.contexts_by_lineno(name).items():
                    contexts.setdefault(line, set()).update(names)
    return {"side": json.loads(side.read_text(encoding="utf-8")), "calc": contexts, "root": root}


def test_every_collected_test_and_the_shared_fixtures_it_used_are_written(
    recorded: dict[str, object],
) -> None:
    side = recorded["side"]
    assert isinstance(side, dict)
    assert side["collected"] == [ONE, TWO, ADD, CHILD]
    # Function-scoped fixtures are the test's own; tmp_path's session factory is shared.
    assert side["fixtures"] == {
        ONE: ["shared"],
        TWO: ["shared", "tmp_path_factory"],
        ADD: [],
        CHILD: [],
    }
    assert Path(side["rootdir"]) == recorded["root"]


def test_a_tests_lines_are_named_after_it(recorded: dict[str, object]) -> None:
    calc = recorded["calc"]
    assert isinstance(calc, dict)
    assert calc[5] == {ADD}


def test_a_shared_fixtures_setup_is_named_after_the_fixture(recorded: dict[str, object]) -> None:
    """The map then gives prepare() to test_one and test_two, whichever set the fixture up."""
    calc = recorded["calc"]
    assert isinstance(calc, dict)
    assert calc[9] == {"fixture:shared"}


def test_import_time_has_no_name_except_in_a_tests_child(recorded: dict[str, object]) -> None:
    calc = recorded["calc"]
    assert isinstance(calc, dict)
    assert calc[1] == {"", CHILD}  # collection imported calc; so did test_child's child


def test_a_child_process_of_a_test_is_measured_under_the_tests_name(
    recorded: dict[str, object],
) -> None:
    calc = recorded["calc"]
    assert isinstance(calc, dict)
    assert calc[13] == {CHILD}
