"""One verdict for several reviews (`review/combine.py`, the `summary` task of
examples/review.yaml): the worst verdict wins, a review that did not finish is no pass, and the
summary says why; run as a task would be, on report.json files in tmp_path. The example as a
user runs it: test_review_example.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def summary_ctx(tmp_path: Path, reviews: Any, view: dict[str, Any], failures: dict[str, str]):
    from types import SimpleNamespace

    from reviewflow.executors.base import TaskContext

    return TaskContext(
        run_id="r1",
        task="summary",
        attempt=1,
        params={"reviews": reviews},
        results={},
        meta={},
        run_dir=tmp_path,
        spec=SimpleNamespace(needs=list(view)),  # type: ignore[arg-type]
        failures=failures,
        run_view=lambda: view,
    )


def test_a_report_left_by_an_earlier_run_is_not_read(tmp_path: Path) -> None:
    """A review that failed before writing must not look like the pass of an earlier run."""
    from reviewflow.review.combine import summarize

    for name, verdict in (("security", "approve"), ("pr", "approve")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps({"verdict": verdict}))
    stale = (tmp_path / "security" / "report.json").stat().st_mtime
    view = {
        "security": {"state": "failed", "started_at": stale + 60, "attempts": 1},
        "pr": {"state": "succeeded", "started_at": stale - 60},
    }
    failures = {"security": "exit code 1 (log: security.1.log)"}
    (tmp_path / "security.1.log").write_text("review r2 (security)\nerror: bandit crashed\n")
    reviews = {"security": str(tmp_path / "security"), "pr": str(tmp_path / "pr")}

    result = summarize(summary_ctx(tmp_path, reviews, view, failures))

    assert result["reviews"]["security"]["verdict"] == "not finished"
    assert result["reviews"]["security"]["reasons"] == [
        "exit code 1 (log: security.1.log): error: bandit crashed"  # the review's own words
    ]
    assert result["reviews"]["pr"]["verdict"] == "approve"
    assert result["verdict"] == "not finished"  # no pass without both reports
    text = (tmp_path / "summary.md").read_text()
    assert "| security | not finished | - | - | - |" in text


def test_summarize_without_reviews_fails_naming_the_param(tmp_path: Path) -> None:
    from reviewflow.errors import TaskFailed
    from reviewflow.review.combine import summarize

    with pytest.raises(TaskFailed, match=r"params\.reviews: expected a mapping"):
        summarize(summary_ctx(tmp_path, None, {}, {}))


def write_reports(root: Path, docs: dict[str, Any]) -> dict[str, str]:
    """Each review's report.json under root/<name>; returns the `reviews` param."""
    for name, doc in docs.items():
        (root / name).mkdir()
        (root / name / "report.json").write_text(json.dumps(doc), encoding="utf-8")
    return {name: str(root / name) for name in docs}


def test_the_worst_verdict_wins_and_each_review_is_a_row(tmp_path: Path) -> None:
    from reviewflow.review.combine import summarize

    reviews = write_reports(
        tmp_path,
        {
            "security": {"verdict": "comment", "counts": {"error": 0, "warning": 2}},
            "pr": {"verdict": "approve", "reasons": []},
            "docs": {"verdict": "request_changes", "reasons": ["2 errors in new lines"]},
        },
    )
    result = summarize(summary_ctx(tmp_path, reviews, {}, {}))
    assert result["verdict"] == "request_changes"
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# Review summary: request_changes\n")
    assert "| security | comment | 0 | 2 |" in text and "| pr | approve | 0 | 0 |" in text
    assert "## docs: request_changes\n\n- 2 errors in new lines" in text
    del reviews["docs"]
    assert summarize(summary_ctx(tmp_path, reviews, {}, {}))["verdict"] == "comment"


@pytest.mark.parametrize(
    ("report", "state", "reason"),
    [
        (None, "failed", "no report.json from this run"),
        ("{not json", "succeeded", "no report.json from this run"),
        ('{"verdict": "great"}', "succeeded", "no report.json from this run"),
        ('{"counts": {}}', "succeeded", "no report.json from this run"),
        (None, "skipped", "not run"),
    ],
    ids=["missing", "not-json", "unknown-verdict", "no-verdict", "skipped"],
)
def test_a_review_without_a_usable_report_is_not_finished(
    tmp_path: Path, report: str | None, state: str, reason: str
) -> None:
    from reviewflow.review.combine import summarize

    (tmp_path / "security").mkdir()
    if report is not None:
        (tmp_path / "security" / "report.json").write_text(report, encoding="utf-8")
    reviews = {
        "security": str(tmp_path / "security"),
        **write_reports(tmp_path, {"pr": {"verdict": "approve"}}),
    }
    view = {"security": {"state": state}}
    result = summarize(summary_ctx(tmp_path, reviews, view, {}))
    assert result["reviews"]["security"] == {
        "verdict": "not finished",
        "reasons": [reason],
        "report": None,
    }
    assert result["verdict"] == "not finished"  # worse than a pass, not a finding


def test_the_summary_says_what_each_review_compared(tmp_path: Path) -> None:
    from reviewflow.review.combine import summarize

    change = {"base": "1a2b3c4d5e6f7a8b", "base_ref": "main", "head": "9f8e7d6c5b4a3928"}
    reviews = write_reports(
        tmp_path,
        {
            "pr": {"verdict": "approve", "change": change},
            "security": {"verdict": "approve", "change": {**change, "dirty": True}},
        },
    )
    summarize(summary_ctx(tmp_path, reviews, {}, {}))
    text = (tmp_path / "summary.md").read_text()
    assert "Change: main (1a2b3c4d5e6f) .. 9f8e7d6c5b4a\n" in text
    assert "Change: main (1a2b3c4d5e6f) .. 9f8e7d6c5b4a + uncommitted changes\n" in text
