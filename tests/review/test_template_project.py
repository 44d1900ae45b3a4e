"""A repository's own review settings: `[tool.reviewflow.review]` in its pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewflow.errors import SpecError
from reviewflow.review.template import load_template, project_settings

SETTINGS = """
[tool.reviewflow.review.checks.tests]
timeout = "3m"
options = {command = ["pytest", "-q", "tests/unit"]}

[tool.reviewflow.review.gates]
min_changed_line_coverage = 90
"""


def test_the_projects_settings_apply_over_the_template(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(SETTINGS)
    tmpl = load_template("pr", project=tmp_path)
    assert tmpl.checks["tests"].timeout == 180
    assert tmpl.checks["tests"].options["command"] == ["pytest", "-q", "tests/unit"]
    assert tmpl.checks["tests"].needs == ["lint"]  # merged key by key, not replaced
    assert tmpl.gates.min_changed_line_coverage == 90
    assert tmpl.gates.max_errors == 0
    assert tmpl.source and tmpl.source.endswith("[tool.reviewflow.review]")
    # Without the project, the template as shipped.
    assert load_template("pr").checks["tests"].timeout == 900


def test_settings_for_a_check_the_template_lacks_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(SETTINGS)
    tmpl = load_template("content", project=tmp_path)
    assert "tests" not in tmpl.checks


def test_no_pyproject_or_no_table_changes_nothing(tmp_path: Path) -> None:
    assert project_settings(tmp_path) == {}
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    assert project_settings(tmp_path) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[tool.reviewflow.review]\nchekcs = {}\n",
            "field 'tool.reviewflow.review.chekcs': unknown key",
        ),
        ("[tool.reviewflow.review]\nchecks = 3\n", "must be a table of check tables"),
        ("[tool.reviewflow.review\n", "not valid TOML"),
        (
            "[tool.reviewflow.review.checks.tests]\ntimeout = 'soon'\n",
            "checks.tests.timeout",
        ),
    ],
)
def test_bad_settings_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_template("pr", project=tmp_path)
    assert message in str(caught.value)
    assert "pyproject.toml" in str(caught.value)
