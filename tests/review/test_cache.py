"""Incremental re-review: a check whose inputs did not change reuses its earlier result.

Real `reviewflow review` processes on throwaway git repositories with the real tools (ruff,
bandit, detect-secrets, pytest); the cache is read back from what the reports say.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from gitrepo import commit, git, make_repo, write
from reviewproc import Reviewed, run_review, user_template

from reviewflow.review.cache import (
    CacheConfig,
    ReviewCache,
    cache_folder,
    tools_fingerprint,
    tree_state,
)

BASE = {
    "pyproject.toml": "[tool.ruff.lint]\nselect = ['F', 'E']\n",
    "pkg/__init__.py": "",
    "pkg/a.py": "def a(x):\n    return x\n",
    "pkg/b.py": "def b(x):\n    return x\n",
    "pkg/c.py": "def c(x):\n    return x\n",
    "tests/data.txt": "expected\n",
    "tests/test_pkg.py": (
        "from pathlib import Path\n\nfrom pkg.a import a\nfrom pkg.b import b\n\n\n"
        "def test_a():\n    assert a(1) == 1\n\n\n"
        "def test_b():\n    assert b(2) == 2\n\n\n"
        "def test_data():\n"
        "    text = (Path(__file__).parent / 'data.txt').read_text()\n"
        "    assert text == 'expected\\n'\n"
    ),
}
CHANGE = {
    # an unused import in a (a lint finding that must survive reuse), b and c edited
    "pkg/a.py": "import os\n\n\ndef a(x):\n    return x + 0\n",
    "pkg/b.py": "def b(x):\n    return x * 1\n",
    "pkg/c.py": "def c(x):\n    return x - 0\n",
}
CODE_CHECKS = ("syntax", "lint", "format", "security", "secrets")


def _template(folder: Path, *, tests: bool) -> Path:
    checks = {
        "docs": {"when": "never"},
        "dependencies": {"when": "never"},
        "performance": {"when": "never"},
        "security": {"when": "always"},
        "secrets": {"when": "always"},
    }
    if not tests:
        checks["tests"] = {"when": "never"}
    return user_template(
        folder,
        "cached",
        {"approval": None, "checks": checks, "gates": {"min_changed_line_coverage": None}},
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo", BASE)
    git(root, "checkout", "-q", "-b", "feature")
    write(root, CHANGE)
    commit(root, "feature")
    return root


def review(tmp_path: Path, repo: Path, template: Path, *args: str) -> Reviewed:
    done = run_review(tmp_path, repo, "--template", template, *args)
    assert done.code in (0, 1), done
    assert (done.out / "report.json").is_file(), done
    return done


def cached(done: Reviewed) -> dict[str, object]:
    return {name: c["cached"] for name, c in done.report["checks"].items()}


def test_an_unchanged_change_reuses_every_check(tmp_path: Path, repo: Path) -> None:
    template = _template(tmp_path, tests=True)
    cold = review(tmp_path, repo, template)
    assert set(cold.report["checks"]) == {*CODE_CHECKS, "tests"}
    assert all(c is None for c in cached(cold).values()), cached(cold)
    assert ("lint", "pkg/a.py", 1, "F401") in cold.findings

    warm = review(tmp_path, repo, template)
    run_id = cold.report["run_id"]
    assert {name: (c or {}).get("run") for name, c in cached(warm).items()} == dict.fromkeys(
        [*CODE_CHECKS, "tests"], run_id
    )
    assert warm.findings == cold.findings
    assert warm.report["verdict"] == cold.report["verdict"]
    assert warm.code == cold.code
    assert "| lint | ❌ failed · cached |" in warm.markdown
    assert "reused the result of an earlier review" in warm.markdown

    forced = review(tmp_path, repo, template, "--no-cache")
    assert all(c is None for c in cached(forced).values()), cached(forced)
    assert forced.findings == cold.findings
    # The cache lives in the reviewed repository's own state folder, which git ignores.
    assert any(cache_folder(repo).rglob("*.json"))
    assert git(repo, "status", "--porcelain") == ""


def test_a_one_file_change_rechecks_only_that_file(tmp_path: Path, repo: Path) -> None:
    template = _template(tmp_path, tests=False)
    cold = review(tmp_path, repo, template)
    write(repo, {"pkg/b.py": "import sys\n\n\ndef b(x):\n    return x * 1\n"})

    warm = review(tmp_path, repo, template)
    for name in CODE_CHECKS:
        assert warm.report["checks"][name]["cached"] == {"files_reused": 2, "files_checked": 1}
    # What was found in the unchanged file is still reported; the new finding is found.
    assert ("lint", "pkg/a.py", 1, "F401") in warm.findings
    assert ("lint", "pkg/b.py", 1, "F401") in warm.findings
    assert ("lint", "pkg/b.py", 1, "F401") not in cold.findings
    assert "· cached for 2 of 3 file(s)" in warm.markdown
    log = next((tmp_path / ".reviewflow" / "runs" / warm.report["run_id"]).glob("lint.*.log"))
    assert "reused the findings of 2 unchanged file(s)" in log.read_text()
    assert log.read_text().count("$ ") == 1  # one ruff run, on pkg/b.py alone
    assert "pkg/b.py" in log.read_text() and "pkg/a.py" not in log.read_text()


def test_a_change_to_a_file_the_tests_read_reruns_them(tmp_path: Path, repo: Path) -> None:
    template = _template(tmp_path, tests=True)
    cold = review(tmp_path, repo, template)
    assert cold.report["checks"]["tests"]["status"] == "passed", cold.report["checks"]
    write(repo, {"tests/data.txt": "changed\n"})

    warm = review(tmp_path, repo, template)
    assert warm.report["checks"]["tests"]["cached"] is None
    assert warm.report["checks"]["tests"]["status"] == "failed"
    assert ("tests", "tests/test_pkg.py", 15, "test-failed") in warm.findings  # test_data
    # No Python file changed: the code checks re-parse and re-lint nothing.
    for name in ("syntax", "lint", "format", "security"):
        assert warm.report["checks"][name]["cached"] == {"files_reused": 3, "files_checked": 0}
    assert warm.report["checks"]["secrets"]["cached"] == {"files_reused": 3, "files_checked": 1}


def test_a_changed_tool_config_invalidates(tmp_path: Path, repo: Path) -> None:
    template = _template(tmp_path, tests=False)
    cold = review(tmp_path, repo, template)
    assert ("lint", "pkg/a.py", 1, "F401") in cold.findings
    write(repo, {"pyproject.toml": "[tool.ruff.lint]\nselect = ['E']\n"})

    warm = review(tmp_path, repo, template)
    assert warm.report["checks"]["lint"]["cached"] is None  # every file linted again
    assert ("lint", "pkg/a.py", 1, "F401") not in warm.findings
    # The syntax check reads no configuration: its files are reused.
    assert warm.report["checks"]["syntax"]["cached"] == {"files_reused": 3, "files_checked": 0}


def test_a_deleted_or_corrupt_cache_is_harmless(tmp_path: Path, repo: Path) -> None:
    template = _template(tmp_path, tests=False)
    cold = review(tmp_path, repo, template)
    entries = sorted(cache_folder(repo).rglob("*.json"))
    assert entries
    for i, entry in enumerate(entries):  # cut short, not JSON, another key's entry
        text = entry.read_text()
        if i % 3 == 0:
            entry.write_text(text[: len(text) // 2])
        elif i % 3 == 1:
            entry.write_bytes(b"\0\xff garbage")
        else:
            entry.write_text(json.dumps({**json.loads(text), "key": "0" * 64}))

    again = review(tmp_path, repo, template)
    assert all(c is None for c in cached(again).values()), cached(again)
    assert again.findings == cold.findings
    assert again.code == cold.code

    warm = review(tmp_path, repo, template)  # the entries were written again, whole
    assert all((c or {}).get("run") == again.report["run_id"] for c in cached(warm).values())

    import shutil

    shutil.rmtree(cache_folder(repo))
    gone = review(tmp_path, repo, template)
    assert all(c is None for c in cached(gone).values())
    assert gone.findings == cold.findings


def test_the_cache_is_bounded_by_the_project_setting(tmp_path: Path, repo: Path) -> None:
    with (repo / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[tool.reviewflow.review.cache]\nmax_entries = 6\n")
    commit(repo, "a small cache")
    done = review(tmp_path, repo, _template(tmp_path, tests=False))
    assert done.report["checks"]["lint"]["status"] == "failed"
    # 5 checks x (1 result + 3 or 4 files) were stored; the summary evicted down to the bound.
    assert 0 < len(list(cache_folder(repo).rglob("*.json"))) <= 6


def test_eviction_removes_the_least_recently_used(tmp_path: Path) -> None:
    cache = ReviewCache(tmp_path / "cache", CacheConfig(max_entries=10))
    keys = [f"{i:02d}" + "a" * 62 for i in range(30)]
    for i, key in enumerate(keys):
        cache.put(key, {"result": {"n": i, "pad": "x" * 100}})
        path = cache.folder / key[:2] / f"{key}.json"
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # written one second apart
    assert cache.get(keys[0]) is not None  # used now: the most recent
    removed = cache.evict()
    left = {p.stem for p in cache.folder.rglob("*.json")}
    assert removed == 21 and len(left) == 9
    assert keys[0] in left and keys[-1] in left and keys[1] not in left

    by_size = ReviewCache(tmp_path / "cache", CacheConfig(max_mb=1000 / 1024 / 1024))
    by_size.evict()
    assert sum(p.stat().st_size for p in by_size.folder.rglob("*.json")) <= 1000


def test_eviction_leaves_the_coverage_map_alone(tmp_path: Path) -> None:
    testmap = tmp_path / "cache" / "testmap" / "0123456789abcdef.json"
    testmap.parent.mkdir(parents=True)
    testmap.write_text("{}" + " " * 5000, encoding="utf-8")
    os.utime(testmap, (1_000_000, 1_000_000))  # older than any entry
    cache = ReviewCache(tmp_path / "cache", CacheConfig(max_entries=2, max_mb=1000 / 1024 / 1024))
    for i in range(5):
        cache.put(f"{i:02d}" + "b" * 62, {"result": {"n": i}})
    assert cache.evict() == 4  # down to 90% of the bound: one entry
    assert testmap.is_file()


def test_tool_versions_are_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = tools_fingerprint()
    site = tmp_path / "site"
    (site / "ruff-0.0.1.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    older = tools_fingerprint()
    (site / "ruff-0.0.1.dist-info").rename(site / "ruff-0.0.2.dist-info")
    assert len({before, older, tools_fingerprint()}) == 3


def test_tree_state_sees_uncommitted_and_untracked_files(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "x = 1\n", "b.txt": "b\n"})
    clean = tree_state(root)
    assert set(clean.blobs) == {"a.py", "b.txt"}
    write(root, {"a.py": "x = 2\n", "new.py": "y = 1\n", ".reviewflow/x.json": "{}"})
    (root / "b.txt").unlink()
    dirty = tree_state(root)
    assert set(dirty.blobs) == {"a.py", "new.py"}
    assert dirty.blobs["a.py"] != clean.blobs["a.py"]
    commit(root, "now committed")
    # The same content committed or not hashes alike: git's blob ids.
    assert tree_state(root).blobs == dirty.blobs


def test_what_each_key_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitrepo import branch_with

    from reviewflow.review.cache import check_key
    from reviewflow.review.findings import CheckResult

    root = make_repo(tmp_path / "r", {"README.md": "# r\n", "a.py": "x = 1\n"})
    change = branch_with(root, {"a.py": "x = 2\n"})

    def key(uses: str, options: dict[str, object] | None = None, **upstream: CheckResult) -> str:
        found = check_key(
            task=uses,
            uses=uses,
            options=options or {},
            change=change,
            upstream=upstream,
            state=tree_state(root),
            tools="t",
        )
        assert found is not None
        return found.key

    # Never reused: a plugin, the dependency audit, timings.
    for uses in ("licence", "dependencies", "performance"):
        assert (
            check_key(
                task=uses,
                uses=uses,
                options={},
                change=change,
                upstream={},
                state=tree_state(root),
                tools="t",
            )
            is None
        )
    lint, tests = key("lint"), key("tests")
    assert key("lint", {"select": ["E"]}) != lint
    syntax = CheckResult(check="syntax", summary="ok")
    reused = CheckResult(check="syntax", summary="ok", cached={"run": "earlier"})
    assert key("lint", syntax=syntax) == key("lint", syntax=reused) != lint
    write(root, {"README.md": "# r, edited\n"})  # not a file lint reads; the tests might
    edited = key("tests")
    assert key("lint") == lint and edited != tests
    monkeypatch.setenv("REVIEWFLOW_SOME_SETTING", "1")  # the suite reads the environment
    assert key("tests") != edited and key("lint") == lint
