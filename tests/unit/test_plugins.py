"""The plugin loader (`plugins.py`) apart from the registries it feeds: what a plugin gives a
registry before that registry is imported is applied when it is. Plugin folders in-process:
test_review_plugins.py; each registry's own lookups: test_executors_registry.py and
test_checks_registry.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

LOADER_ONLY = """
import json, sys
from reviewflow.plugins import load_plugin_folders
failures = load_plugin_folders([sys.argv[1]])
before = sorted(m for m in sys.modules if m.startswith("reviewflow.review"))
from reviewflow.review.checks.registry import checks
print(json.dumps({
    "failures": failures,
    "review_imported_by_the_loader": before,
    "checks": [checks.get(n).__name__ for n in ("rfpl-listed", "rfpl-registered")],
}))
"""


def test_a_plugin_loaded_before_the_check_registry_gives_it_its_checks(tmp_path: Path) -> None:
    """The loader imports no registry (layers: plugins sit below review): what a plugin gives
    the check registry before it is imported, `register()` included, is applied when it is."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "both.py").write_text(
        textwrap.dedent(
            """\
            def listed(ctx):
                return []

            def registered(ctx):
                return []

            CHECKS = {"rfpl-listed": listed}

            def register(task_types, checks):
                checks.register("rfpl-registered", registered)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", LOADER_ONLY, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "failures": {},
        "review_imported_by_the_loader": [],
        "checks": ["listed", "registered"],
    }
