"""The verdict (`decide`) and the three reports, from results built directly (no tools run).

The change under review: `app.py` changed lines 10-12 (modified), `new.py` was added (lines
1-5), `gone.py` was deleted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reviewflow.review.change import Change, ChangedFile
from reviewflow.review.findings import CheckResult, Finding
from reviewflow.review.report import (
    SARIF_SCHEMA,
    decide,
    incomplete,
    mermaid_view,
    report_json,
    report_markdown,
    report_sarif,
    write_reports,
)
from reviewflow.review.template import Gates

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text("utf-8"))
VALIDATOR = jsonschema.Draft4Validator(SCHEMA)

CHANGE = Change(
    root="/work/repo",
    base="b" * 40,
    base_ref="merge-base with main",
    head="h" * 40,
    dirty=False,
    files=[
        ChangedFile(path="app.py", status="modified", lines=[(10, 12)]),
        ChangedFile(path="new.py", status="added", lines=[(1, 5)]),
        ChangedFile(path="gone.py", status="deleted"),
    ],
)
PR_GATES = Gates(max_errors=0, min_changed_line_coverage=80)


def f(
    check: str = "lint",
    file: str | None = "app.py",
    line: int | None = 10,
    severity: str = "error",
    rule: str = "F401",
    message: str = "m",
) -> Finding:
    return Finding(
        check=check,
        file=file,
        line=line,
        severity=severity,  # type: ignore[arg-type]
        rule=rule,
        message=message,
    )


def result(name: str, *findings: Finding, **fields: Any) -> CheckResult:
    if fields:
        return CheckResult(check=name, findings=list(findings), **fields)
    return CheckResult.from_findings(name, findings)


def results(*items: CheckResult) -> dict[str, CheckResult]:
    return {r.check: r for r in items}


# ---------------------------------------------------------------------------- decide()


def test_no_findings_approves() -> None:
    v = decide(results(result("lint"), result("syntax")), CHANGE, PR_GATES)
    assert (v.decision, v.reasons, v.shown, v.hidden) == ("approve", [], [], 0)
    assert v.counts == {"error": 0, "warning": 0, "info": 0}
    assert v.coverage is None and v.incomplete == []


def test_an_error_on_a_changed_line_requests_changes() -> None:
    v = decide(results(result("lint", f(line=11))), CHANGE, PR_GATES)
    assert v.decision == "request_changes"
    assert v.reasons == ["1 error(s) on changed lines (max 0)"]
    assert v.counts == {"error": 1, "warning": 0, "info": 0}


def test_an_error_on_an_unchanged_line_of_a_changed_file_is_hidden() -> None:
    lint = result("lint", f(line=9), f(line=13))
    v = decide(results(lint), CHANGE, PR_GATES)
    assert (v.decision, v.shown, v.hidden) == ("approve", [], 2)
    assert v.counts["error"] == 0


def test_all_findings_shows_and_counts_the_hidden_ones() -> None:
    lint = result("lint", f(line=9), f(line=11))
    v = decide(results(lint), CHANGE, PR_GATES, all_findings=True)
    assert v.decision == "request_changes"
    assert v.hidden == 0
    assert [x.line for x in v.shown] == [9, 11]
    assert v.reasons == ["2 error(s) on changed lines (max 0)"]


def test_any_line_of_an_added_file_counts() -> None:
    v = decide(results(result("lint", f(file="new.py", line=5))), CHANGE, PR_GATES)
    assert v.decision == "request_changes"


def test_a_leading_dot_slash_is_the_same_file() -> None:
    v = decide(results(result("lint", f(file="./app.py", line=10))), CHANGE, PR_GATES)
    assert v.decision == "request_changes"


def test_whole_file_and_general_findings_count() -> None:
    whole = f(check="format", line=None, severity="warning", rule="format")
    general = f(check="tests", file=None, line=None, severity="info", rule="slow-test")
    v = decide(results(result("format", whole), result("tests", general)), CHANGE, PR_GATES)
    assert v.shown == [whole, general]
    assert v.decision == "comment"
    assert v.counts == {"error": 0, "warning": 1, "info": 1}


def test_warnings_and_notes_comment_without_blocking() -> None:
    lint = result("lint", f(severity="warning", rule="E501"), f(severity="info", rule="I"))
    v = decide(results(lint), CHANGE, PR_GATES)
    assert (v.decision, v.reasons) == ("comment", [])


@pytest.mark.parametrize(
    ("max_errors", "decision"),
    [(0, "request_changes"), (1, "request_changes"), (2, "comment"), (None, "comment")],
)
def test_the_max_errors_gate(max_errors: int | None, decision: str) -> None:
    lint = result("lint", f(line=10), f(line=11))
    v = decide(results(lint), CHANGE, Gates(max_errors=max_errors))
    assert v.decision == decision
    if decision == "request_changes":
        assert v.reasons == [f"2 error(s) on changed lines (max {max_errors})"]


@pytest.mark.parametrize(
    ("max_warnings", "decision"), [(0, "request_changes"), (1, "comment"), (None, "comment")]
)
def test_the_max_warnings_gate(max_warnings: int | None, decision: str) -> None:
    lint = result("lint", f(severity="warning", rule="E501"))
    v = decide(results(lint), CHANGE, Gates(max_warnings=max_warnings))
    assert v.decision == decision
    assert v.reasons == (
        [f"1 warning(s) (max {max_warnings})"] if decision == "request_changes" else []
    )


@pytest.mark.parametrize(
    ("coverage", "minimum", "decision"),
    [
        (79.9, 80, "request_changes"),
        (80.0, 80, "approve"),
        (100.0, 80, "approve"),
        (0.0, None, "approve"),
        (0.0, 0, "approve"),
        (None, 80, "approve"),
    ],
)
def test_the_changed_line_coverage_gate(
    coverage: float | None, minimum: float | None, decision: str
) -> None:
    tests = result("tests", metrics={"changed_line_coverage": coverage})
    v = decide(results(tests), CHANGE, Gates(min_changed_line_coverage=minimum))
    assert v.decision == decision
    assert v.coverage == coverage
    if decision == "request_changes":
        assert v.reasons == [f"changed-line coverage {coverage:.1f}% (min {minimum:g}%)"]


def test_a_check_that_broke_requests_changes() -> None:
    broken = result("lint", status="error", summary="ruff check failed (exit 2): boom")
    v = decide(results(result("syntax"), broken), CHANGE, PR_GATES)
    assert v.decision == "request_changes"
    assert v.reasons == ["check lint could not run: ruff check failed (exit 2): boom"]


def test_a_broken_check_does_not_block_when_the_gate_is_off() -> None:
    broken = result("lint", status="error", summary="boom")
    v = decide(results(broken), CHANGE, Gates(fail_on_check_error=False))
    assert v.decision == "approve"


@pytest.mark.parametrize(
    "skipped",
    [
        CheckResult(check="deps", status="skipped", summary="skipped: service unreachable"),
        CheckResult(
            check="deps",
            status="skipped",
            summary="skipped: pip-audit is not installed: pip install 'reviewflow[review]'",
        ),
        CheckResult(
            check="deps",
            status="skipped",
            summary="skipped: not run (lint failed)",
            metrics={"incomplete": True},
        ),
    ],
)
def test_a_check_that_could_not_run_comments(skipped: CheckResult) -> None:
    assert incomplete(skipped)
    v = decide(results(result("lint"), skipped), CHANGE, PR_GATES)
    assert (v.decision, v.reasons, v.incomplete) == ("comment", [], ["deps"])


def test_a_check_with_nothing_to_do_is_not_incomplete() -> None:
    nothing = CheckResult.skipped("lint", "no Python files changed")
    assert not incomplete(nothing)
    assert decide(results(nothing), CHANGE, PR_GATES).decision == "approve"


def test_a_rejected_approval_requests_changes() -> None:
    approval = {"decision": "rejected", "approver": "alice", "comment": "too long"}
    v = decide(results(result("length")), CHANGE, PR_GATES, approval=approval)
    assert v.decision == "request_changes"
    assert v.reasons == ["rejected by alice: too long"]


def test_a_rejection_without_a_name_or_comment() -> None:
    v = decide({}, CHANGE, PR_GATES, approval={"decision": "rejected"})
    assert v.reasons == ["rejected by a reviewer"]


def test_an_approval_approves() -> None:
    approval = {"decision": "approved", "approver": "alice", "comment": None}
    assert decide({}, CHANGE, PR_GATES, approval=approval).decision == "approve"


def test_every_broken_gate_is_a_reason() -> None:
    lint = result("lint", f(line=10), f(severity="warning", rule="E501", line=11))
    tests = result("tests", metrics={"changed_line_coverage": 10.0})
    broken = result("docs", status="error", summary="crashed")
    v = decide(
        results(lint, tests, broken),
        CHANGE,
        Gates(max_errors=0, max_warnings=0, min_changed_line_coverage=50),
        approval={"decision": "rejected", "approver": "bob", "comment": None},
    )
    assert v.reasons == [
        "1 error(s) on changed lines (max 0)",
        "1 warning(s) (max 0)",
        "changed-line coverage 10.0% (min 50%)",
        "check docs could not run: crashed",
        "rejected by bob",
    ]


def test_a_failing_test_in_an_unchanged_file_counts() -> None:
    failed = f(check="tests", file="tests/test_app.py", line=4, rule="test-failed")
    v = decide(results(result("tests", failed)), CHANGE, PR_GATES)
    assert v.shown == [failed]
    assert v.decision == "request_changes"


# ---------------------------------------------------------------------------- reports


def _doc(v: Any, res: dict[str, CheckResult], gates: Gates = PR_GATES) -> dict[str, Any]:
    view = {
        name: {
            "state": "succeeded",
            "started_at": 100.0,
            "finished_at": 101.25,
            "needs": ["change"],
        }
        for name in res
    }
    return report_json(
        v, res, CHANGE, run_id="r1", template="pr", view=view, approval=None, gates=gates
    )


def test_report_json_shape() -> None:
    res = results(result("lint", f(line=10), f(line=1)), result("syntax"))
    v = decide(res, CHANGE, PR_GATES)
    doc = _doc(v, res)
    assert doc["verdict"] == "request_changes"
    assert doc["counts"] == {"error": 1, "warning": 0, "info": 0, "hidden": 1}
    assert doc["checks"]["lint"] == {
        "status": "failed",
        "summary": res["lint"].summary,
        "metrics": {},
        "duration_s": 1.25,
        "findings": 2,
        "cached": None,
    }
    assert doc["findings"] == [
        {
            "check": "lint",
            "file": "app.py",
            "line": 10,
            "severity": "error",
            "rule": "F401",
            "message": "m",
        }
    ]
    assert doc["change"]["files"][0] == {
        "path": "app.py",
        "status": "modified",
        "lines": [(10, 12)],
    }
    json.dumps(doc)  # serialisable as it is


def test_report_markdown_escapes_cells_and_lists_each_check() -> None:
    res = results(result("lint", f(message="a | b <script>")), result("syntax"))
    v = decide(res, CHANGE, PR_GATES)
    md = report_markdown(_doc(v, res), res, v, "flowchart LR")
    assert md.startswith("## ❌ reviewflow: request changes\n")
    assert "| lint | ❌ failed |" in md and "| syntax | ✅ passed |" in md
    assert "| 1 | 1.2s |" in md or "| 1 | 1.3s |" in md
    assert "a \\| b &lt;script>" in md
    assert "```mermaid\nflowchart LR\n```" in md


def test_report_markdown_caps_the_rows_of_a_check() -> None:
    lint = result("lint", *[f(file="new.py", line=1, rule=f"R{i}") for i in range(55)])
    res = results(lint)
    v = decide(res, CHANGE, Gates(max_errors=None))
    md = report_markdown(_doc(v, res), res, v, "")
    assert md.count("| `new.py:1` |") == 50
    assert "| … | | | 5 more in report.json |" in md


def test_mermaid_view_nodes_edges_and_states() -> None:
    view = {
        "change": {"state": "succeeded", "needs": []},
        "lint": {"state": "failed", "needs": ["change"]},
        "summary": {"state": "running", "needs": ["change", "lint"]},
    }
    diagram = mermaid_view(view, {"summary": "succeeded"})
    assert diagram.splitlines()[:4] == [
        "flowchart LR",
        '    t0["change<br/><small>succeeded</small>"]:::succeeded',
        '    t1["lint<br/><small>failed</small>"]:::failed',
        '    t2["summary<br/><small>succeeded</small>"]:::succeeded',
    ]
    for edge in ("t0 --> t1", "t0 --> t2", "t1 --> t2"):
        assert f"    {edge}" in diagram
    assert "classDef failed" in diagram and "classDef succeeded" in diagram
    assert "classDef running" not in diagram


def test_sarif_shape() -> None:
    shown = [
        f(line=10),
        f(line=11),
        f(check="format", file="dir/a b.py", line=None, severity="warning", rule="format"),
        f(check="tests", file=None, line=None, severity="info", rule="no-tests"),
        f(file="new.py", line=0),
    ]
    res = results(
        result("lint", shown[0], shown[1], shown[4]),
        result("format", shown[2]),
        result("tests", shown[3]),
    )
    v = decide(res, CHANGE, PR_GATES, all_findings=True)
    sarif = report_sarif(v, root="/work/my repo")
    assert list(VALIDATOR.iter_errors(sarif)) == []
    assert sarif["$schema"] == SARIF_SCHEMA and sarif["version"] == "2.1.0"
    (run,) = sarif["runs"]
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": "file:///work/my%20repo/"}}
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["lint/F401", "format/format", "tests/no-tests"]
    assert [r["name"] for r in rules] == ["LintF401", "FormatFormat", "TestsNoTests"]
    assert [r["defaultConfiguration"]["level"] for r in rules] == ["error", "warning", "note"]
    out = run["results"]
    assert [(r["ruleId"], r["ruleIndex"], r["level"]) for r in out] == [
        ("lint/F401", 0, "error"),
        ("lint/F401", 0, "error"),
        ("lint/F401", 0, "error"),
        ("format/format", 1, "warning"),
        ("tests/no-tests", 2, "note"),
    ]
    where = [r.get("locations", [{}])[0].get("physicalLocation") for r in out]
    assert where[0] == {
        "artifactLocation": {"uri": "app.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 10},
    }
    # SARIF lines start at 1: a finding at "line 0" is about the whole file.
    assert where[2] == {"artifactLocation": {"uri": "new.py", "uriBaseId": "%SRCROOT%"}}
    assert where[3] == {"artifactLocation": {"uri": "dir/a%20b.py", "uriBaseId": "%SRCROOT%"}}
    # code scanning rejects a result without a location: no file means the repository root
    assert where[4] == {"artifactLocation": {"uri": ".", "uriBaseId": "%SRCROOT%"}}
    assert all(r["help"]["text"] and r["helpUri"].startswith("https://") for r in rules)
    assert out[0]["message"] == {"text": "m"}


def test_an_empty_sarif_is_valid() -> None:
    sarif = report_sarif(decide({}, CHANGE, PR_GATES), root="/r")
    assert list(VALIDATOR.iter_errors(sarif)) == []
    assert sarif["runs"][0]["results"] == []


def test_write_reports_writes_three_files(tmp_path: Path) -> None:
    paths = write_reports(tmp_path / "out", {"verdict": "approve"}, "# md\n", {"version": "2.1.0"})
    assert paths == {
        n: str(tmp_path / "out" / n) for n in ("report.md", "report.json", "report.sarif")
    }
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == {"verdict": "approve"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "report.json",
        "report.md",
        "report.sarif",
    ]
