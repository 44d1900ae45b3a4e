"""The registry of checks (`review/checks/registry.py`): built-ins named by import path and
imported on first use, entry points of `reviewflow.checks` (a real dist-info directory on
sys.path) that never shadow a built-in, and an unknown name answered with the known ones and
the plugins that failed to load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reviewflow.review.checks.registry import BUILTIN, CheckNotFound, checks
from rfhelpers import write_files


def test_broken_check_entry_points_are_listed_and_the_others_work(
    fresh_registries, entry_point_dist
):
    check = checks.get("rfpt-ep-check")
    assert check(None) == [{"rule": "r", "message": "m"}]
    assert checks.plugin_errors["rfpt-ep-ghost"] == (
        "ModuleNotFoundError: No module named 'rfpt_ep_not_installed'"
    )
    assert checks.plugin_errors["rfpt-ep-attr"].startswith("AttributeError: ")
    assert "rfpt-ep-check" in checks.names() and "rfpt-ep-ghost" not in checks.names()
    assert checks.get("syntax").__name__ == "syntax"  # built-ins are untouched
    with pytest.raises(CheckNotFound) as info:
        checks.get("rfpt-ep-ghost")
    message = str(info.value.args[0])
    assert "unknown check 'rfpt-ep-ghost'" in message
    assert (
        "plugin 'rfpt-ep-ghost' failed to load: "
        "ModuleNotFoundError: No module named 'rfpt_ep_not_installed'"
    ) in message


def test_an_entry_point_cannot_replace_a_built_in_check(
    fresh_registries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = write_files(
        tmp_path / "site",
        {
            "rfpt_shadow.py": "def check(ctx):\n    return ['shadow']\n",
            "rfpt_shadow-1.0.dist-info/METADATA": (
                "Metadata-Version: 2.1\nName: rfpt-shadow\nVersion: 1.0\n"
            ),
            "rfpt_shadow-1.0.dist-info/entry_points.txt": """
            [reviewflow.checks]
            syntax = rfpt_shadow:check
            rfpt-added = rfpt_shadow:check
        """,
        },
    )
    monkeypatch.syspath_prepend(str(site))
    assert checks.get("rfpt-added")(None) == ["shadow"]
    assert checks.get("syntax").__module__ == "reviewflow.review.checks.code"


def test_a_check_registered_by_import_path_is_imported_when_first_asked_for(
    fresh_registries,
) -> None:
    checks.register("rfpt-lazy", "rfpt_not_written_yet:check")
    assert "rfpt-lazy" in checks.names()
    with pytest.raises(ModuleNotFoundError, match="rfpt_not_written_yet"):
        checks.get("rfpt-lazy")
    checks.register("rfpt-lazy", "reviewflow.review.checks.code:syntax")
    assert checks.get("rfpt-lazy") is checks.get("syntax")


def test_an_unknown_check_is_named_with_every_known_one(fresh_registries) -> None:
    with pytest.raises(CheckNotFound) as info:
        checks.get("rfpt-nope")
    message = str(info.value.args[0])
    assert message.startswith("unknown check 'rfpt-nope' (known: ")
    assert all(name in message for name in BUILTIN)


LISTING = """
import json, sys
from reviewflow.review.checks.registry import BUILTIN, checks
names = checks.names()
before = sorted(m for m in sys.modules if m.startswith("reviewflow.review.checks."))
checks.get("readability")
after = sorted(m for m in sys.modules if m.startswith("reviewflow.review.checks."))
print(json.dumps({"builtin": sorted(BUILTIN), "names": names, "before": before, "after": after}))
"""


def test_built_in_checks_are_imported_only_when_a_review_runs_them() -> None:
    """Listing the checks imports none of them: a review without content checks never pays
    for textstat and the spelling dictionaries."""
    done = subprocess.run(
        [sys.executable, "-c", LISTING], capture_output=True, text=True, timeout=60, check=True
    )
    doc = json.loads(done.stdout)
    assert set(doc["builtin"]) <= set(doc["names"])
    assert "reviewflow.review.checks.content" not in doc["before"]
    assert "reviewflow.review.checks.code" not in doc["before"]
    assert "reviewflow.review.checks.content" in doc["after"]
    assert "reviewflow.review.checks.code" not in doc["after"]
