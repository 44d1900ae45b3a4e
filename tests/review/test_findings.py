"""What every check reports (`review/findings.py`): a result whose status and summary follow
its findings, secret values masked wherever they could be quoted, and tool messages made one
bounded line for tables, comments and SARIF."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from reviewflow.review.findings import (
    CheckResult,
    Finding,
    clean_message,
    mask,
    mask_data,
    mask_text,
)

VALUE = "Zr8vQm2L" + "xT9wKp4Nq"


# ------------------------------------------------------------------------------ results


def test_a_result_fails_on_an_error_finding_and_counts_what_it_found() -> None:
    warn = Finding(check="lint", file="a.py", line=3, rule="E1", message="m")
    error = warn.model_copy(update={"severity": "error"})
    failed = CheckResult.from_findings("lint", [warn, error, warn], what="ruff")
    assert (failed.status, failed.summary) == ("failed", "ruff: 1 error(s), 2 warning(s)")
    passed = CheckResult.from_findings("lint", iter([warn]))
    assert (passed.status, passed.summary, len(passed.findings)) == (
        "passed",
        "0 error(s), 1 warning(s)",
        1,
    )
    assert CheckResult.from_findings("lint", []).summary == "no findings"


def test_a_skipped_result_says_why() -> None:
    skipped = CheckResult.skipped("types", "install mypy")
    assert (skipped.status, skipped.summary) == ("skipped", "skipped: install mypy")


def test_the_secrets_a_result_holds_are_never_written_out() -> None:
    result = CheckResult(check="secrets", secrets=[VALUE])
    assert VALUE not in result.model_dump_json()
    assert "secrets" not in json.loads(result.model_dump_json())


def test_a_finding_is_one_fixed_shape() -> None:
    """A plugin check's typo (`lines=`) is an error, not a field silently dropped."""
    with pytest.raises(ValidationError):
        Finding(check="x", rule="r", message="m", lines=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Finding(check="x", rule="r", message="m", severity="fatal")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ masking


def test_a_value_and_any_quote_of_its_first_8_characters_are_masked() -> None:
    text = f"a={VALUE} b={VALUE[:11]}… c={VALUE[:7]} d={VALUE}{VALUE}"
    assert mask_text(text, [VALUE]) == f"a=Zr8v**** b=Zr8v****… c={VALUE[:7]} d=Zr8v****Zr8v****"
    assert mask_text("pw: abcd!", ["abcd"]) == "pw: ****!"


def test_a_mask_keeps_at_most_four_characters_of_a_long_secret() -> None:
    assert mask(VALUE) == "Zr8v****"
    assert mask("abcdefgh") == "****"  # 8 or fewer: nothing of it


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    """Masking `ab` everywhere would garble every report for nothing a scan can call secret."""
    assert mask_text("ab cd", ["ab"]) == "ab cd"


def test_every_string_value_of_a_report_is_masked() -> None:
    data = {"a": [f"x {VALUE}", (1, VALUE)], "b": {"c": VALUE}, "n": 3}
    assert mask_data(data, [VALUE]) == {
        "a": ["x Zr8v****", [1, "Zr8v****"]],
        "b": {"c": "Zr8v****"},
        "n": 3,
    }
    assert mask_data(data, []) is data


# ------------------------------------------------------------------------------ messages


def test_a_tool_message_becomes_one_line_without_colours() -> None:
    assert clean_message("\x1b[31mE501\x1b[0m line\r\n  too   long\n") == "E501 line too long"


def test_a_long_message_is_cut_with_an_ellipsis_at_the_limit() -> None:
    cut = clean_message("x" * 600)
    assert len(cut) == 500 and cut.endswith("…")
    assert clean_message("abcdef", limit=4) == "abc…"
    assert clean_message("abcd", limit=4) == "abcd"
