"""report.sarif as GitHub code scanning takes it: whole, with every alert placed and tracked.

Code scanning rejects the whole file for one result without a location, shows a rule's help
next to each alert, and follows an alert across pushes by its fingerprints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from gitrepo import commit, git, make_repo, write
from reviewproc import Reviewed, run_review

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text("utf-8"))
PYPROJECT = '[project]\nname = "calc"\nversion = "0"\n'
BAD = "import os\nimport sys\n\n\ndef add(a, b):\n    return a + b\n"
"""Two unused imports (ruff F401) on the lines the change adds."""


@pytest.fixture(scope="module")
def pushes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Reviewed, Reviewed]:
    """One review of a change, and one after a second push moved its lines down."""
    cwd = tmp_path_factory.mktemp("sarif")
    repo = make_repo(cwd / "repo", {"README.md": "# calc\n", "pyproject.toml": PYPROJECT})
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, {"calc.py": BAD})
    commit(repo)
    first = run_review(cwd, repo, out=cwd / "first")  # no tests: a finding about no file
    write(repo, {"calc.py": '"""Calculator."""\n\n' + BAD})
    commit(repo)
    second = run_review(cwd, repo, out=cwd / "second")
    return first, second


def test_the_sarif_validates_against_the_schema(pushes: tuple[Reviewed, Reviewed]) -> None:
    validator = jsonschema.Draft4Validator(SCHEMA)
    for done in pushes:
        assert done.code == 1, str(done)
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(done.sarif)]
        assert errors == []
        (run,) = done.sarif["runs"]
        assert len(run["results"]) == len(done.report["findings"]) >= 3


def test_every_result_has_a_location_with_a_file(pushes: tuple[Reviewed, Reviewed]) -> None:
    (run,) = pushes[0].sarif["runs"]
    for result in run["results"]:
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"], result
    # a finding about no file (no tests ran) points at the project's configuration
    (no_tests,) = [r for r in run["results"] if r["ruleId"] == "tests/no-tests"]
    physical = no_tests["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "pyproject.toml", "uriBaseId": "%SRCROOT%"}}


def test_every_rule_has_help_and_a_help_uri(pushes: tuple[Reviewed, Reviewed]) -> None:
    (run,) = pushes[0].sarif["runs"]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert {"lint/F401", "tests/no-tests"} <= set(rules)
    for rule in rules.values():
        assert rule["help"]["text"].strip(), rule
        assert rule["helpUri"].startswith("https://"), rule
    # ruff's own page for the rule, as ruff names it
    assert rules["lint/F401"]["helpUri"] == "https://docs.astral.sh/ruff/rules/unused-import"
    assert run["tool"]["driver"]["informationUri"].startswith("https://")


def test_fingerprints_follow_a_finding_across_pushes(pushes: tuple[Reviewed, Reviewed]) -> None:
    def lint(done: Reviewed) -> list[tuple[int, str]]:
        (run,) = done.sarif["runs"]
        return [
            (
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
                r["partialFingerprints"]["primaryLocationLineHash"],
            )
            for r in run["results"]
            if r["ruleId"] == "lint/F401"
        ]

    before, after = lint(pushes[0]), lint(pushes[1])
    assert [line for line, _ in before] == [1, 2]
    assert [line for line, _ in after] == [3, 4]  # the same two imports, two lines down
    assert [fp for _, fp in before] == [fp for _, fp in after]
    assert len({fp for _, fp in before}) == 2  # and each keeps its own alert
