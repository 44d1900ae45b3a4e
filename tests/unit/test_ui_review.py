"""The run page's review reports: which folder is a run's, what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reviewflow.server.ui_review import NoReport, own_folder, read_report, review_doc
from reviewflow.store import RunRecord


def _record(spec: dict, run_id: str = "r1", workflow: str = "review-x") -> RunRecord:
    return RunRecord(run_id, workflow, "succeeded", json.dumps(spec), {}, 0.0)


def _summary_spec(out: Path) -> dict:
    return {
        "tasks": {
            "summary": {"call": "reviewflow.review.runner:summarize", "params": {"out": str(out)}}
        }
    }


def test_review_doc_of_a_review_and_of_other_runs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    rec = _record(_summary_spec(out))
    assert review_doc(rec, tmp_path) == {"review": True, "written": False}
    out.mkdir()
    findings = [{"check": "c", "severity": "error", "rule": "R", "message": "m", "line": 2}]
    doc = {
        "run_id": "r1",
        "verdict": "approve",
        "findings": findings * 1500,
        "counts": {"error": 1},
    }
    (out / "report.json").write_text(json.dumps(doc))
    (out / "report.md").write_text("# hi")
    got = review_doc(rec, tmp_path)
    assert got["verdict"] == "approve" and got["findings_total"] == 1500
    assert len(got["findings"]) == 1000  # bounded
    assert got["files"] == ["report.md", "report.json"]  # no report.sarif written
    assert got["findings"][0] == {**findings[0], "file": None}
    assert read_report(own_folder(rec, tmp_path), "report.md") == b"# hi"
    assert review_doc(_record({"tasks": {"a": {}}}, workflow="plain"), tmp_path) == {
        "review": False
    }
    broken = RunRecord("r2", "review-x", "failed", "not json", {}, 0.0)
    assert review_doc(broken, tmp_path) == {"review": False}


def test_another_runs_report_a_link_and_other_names_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text('{"run_id": "someone-else"}')
    rec = _record(_summary_spec(out))
    assert review_doc(rec, tmp_path)["written"] is False
    with pytest.raises(NoReport):
        own_folder(rec, tmp_path)
    (out / "report.json").write_text('{"run_id": "r1"}')
    (tmp_path / "secret").write_text("secret")
    (out / "report.md").symlink_to(tmp_path / "secret")
    with pytest.raises(NoReport):
        read_report(out, "report.md")  # a symbolic link is not followed
    with pytest.raises(NoReport):
        read_report(out, "../secret")
    (out / "report.sarif").mkdir()
    with pytest.raises(NoReport):
        read_report(out, "report.sarif")  # not a regular file


def test_a_server_review_run_reads_its_work_folder(tmp_path: Path) -> None:
    rec = _record({"tasks": {"review": {"type": "shell"}}}, run_id="gh-o.r-pr1-abc")
    folder = tmp_path / "gh-o.r-pr1-abc" / "report"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text('{"run_id": "inner", "verdict": "comment"}')
    assert review_doc(rec, tmp_path)["verdict"] == "comment"
    assert own_folder(rec, tmp_path) == folder.absolute()
