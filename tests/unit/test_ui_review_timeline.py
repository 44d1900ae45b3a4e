"""The run page's review reports (which folder is a run's, what is refused) and its timeline
of attempts (bounded for big runs), on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reviewflow.server.ui_review import NoReport, own_folder, read_report, review_doc
from reviewflow.server.ui_timeline import task_events, task_row, timeline
from reviewflow.store import RunRecord, SQLiteStore, TaskRecord


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


def _events(store: SQLiteStore, run_id: str, n: int) -> None:
    tasks = [
        TaskRecord(run_id, f"t{i}", "succeeded", 1, float(i), float(i), float(i + i % 7))
        for i in range(n)
    ]
    events = []
    for i in range(n):
        start = float(i)
        events.append((run_id, f"t{i}", "ready", "running", 1, start, None))
        events.append((run_id, f"t{i}", "running", "succeeded", 1, start + (i % 7), None))
    store.create_run(RunRecord(run_id, "w", "succeeded", "{}", {}, 0.0), tasks, events)


def test_timeline_is_bounded_to_the_slowest_and_the_latest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "rf.db")
    _events(store, "big", 1000)
    doc = timeline(store, "big", limit=100)
    assert doc["total"] == 1000 and len(doc["bars"]) == 100
    starts = [b[2] for b in doc["bars"]]
    assert starts == sorted(starts)
    assert sum(1 for b in doc["bars"] if b[3] - b[2] == 6) >= 50  # the slowest
    assert doc["bars"][-1][0] == "t999"  # the latest
    small = timeline(store, "big", limit=5000)
    assert len(small["bars"]) == 1000
    assert small["bars"][0] == ["t0", 1, 0.0, 0.0, "succeeded"]
    assert [e.to_state for e in task_events(store, "big", "t3")] == ["running", "succeeded"]
    row = task_row(store, "big", "t3")
    assert row is not None and row.state == "succeeded" and row.name == "t3"
    assert task_row(store, "big", "nope") is None
    store.close()
