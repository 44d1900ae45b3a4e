"""The run page of a review run: its verdict, the findings of its report.json, and its three
reports (report.md, report.json, report.sarif) served from the run's output folder.

Which folder is a review run's is decided here, never by a request: the URL names one of three
fixed file names, so no path from a browser reaches the file system. A run made by
`reviewflow review` (or a workflow built the same way) names its folder in its `summary`
task's `out` parameter; that report.json counts only if it says it is this run's (`run_id`), so
a run posted with someone else's folder shows nothing from it. A review run started by this
server (a webhook or a template run: `review_run.py`) writes to `<work dir>/<run id>/report`.
Files are opened without following a symbolic link in their name and read up to a bound.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from ..store import RunRecord

REPORTS = {
    # report.md as plain text: a browser shows it, never renders markup from a finding
    "report.md": "text/plain; charset=utf-8",
    "report.json": "application/json",
    "report.sarif": "application/json",
}
MAX_REPORT_BYTES = 32 * 1024 * 1024
MAX_FINDINGS = 1000
SUMMARY_TASK = "summary"  # review/builder.py
SERVER_REVIEW_TASK = "review"  # review_run.py


class NoReport(Exception):
    """The run is not a review run, or its report is not (yet) there."""


def report_folder(record: RunRecord, work_dir: Path, spec: Any = None) -> tuple[Path, bool] | None:
    """(folder, must_name_this_run) of a review run's reports; None for other runs. `spec`:
    the run's spec already parsed (else parsed from the record)."""
    if spec is None:
        try:
            spec = json.loads(record.spec)
        except ValueError:
            return None
    tasks = spec.get("tasks") if isinstance(spec, dict) else None
    if not isinstance(tasks, dict):
        return None
    summary = tasks.get(SUMMARY_TASK)
    if isinstance(summary, dict) and str(summary.get("call", "")).endswith(":summarize"):
        out = (summary.get("params") or {}).get("out")
        if isinstance(out, str) and out and "\x00" not in out:
            return Path(out).absolute(), True
    review = tasks.get(SERVER_REVIEW_TASK)
    if record.workflow.startswith("review-") and isinstance(review, dict):
        return (work_dir / record.run_id / "report").absolute(), False
    return None


def read_report(folder: Path, name: str) -> bytes:
    """The bytes of `folder/name`: a regular file, not a symbolic link, at most the bound."""
    if name not in REPORTS:
        raise NoReport(name)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(folder / name, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
            raise NoReport(name) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
            raise NoReport(name)
        chunks, size = [], 0
        while size <= MAX_REPORT_BYTES and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)[:MAX_REPORT_BYTES]
    finally:
        os.close(fd)


def own_folder(record: RunRecord, work_dir: Path, spec: Any = None) -> Path:
    """The folder of this run's reports, once its report.json is there and is this run's."""
    found = report_folder(record, work_dir, spec)
    if found is None:
        raise NoReport("not a review run")
    folder, must_name_run = found
    doc = _report_doc(folder)
    if must_name_run and doc.get("run_id") != record.run_id:
        raise NoReport("report.json of another run")
    return folder


def _report_doc(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads(read_report(folder, "report.json"))
    except ValueError:
        raise NoReport("report.json is not JSON") from None
    if not isinstance(doc, dict):
        raise NoReport("report.json is not an object")
    return doc


def review_doc(record: RunRecord, work_dir: Path, spec: Any = None) -> dict[str, Any]:
    """What the run page shows of a review: {review: False} for other runs; else the verdict,
    reasons, counts, checks and the first MAX_FINDINGS findings of report.json."""
    found = report_folder(record, work_dir, spec)
    if found is None:
        return {"review": False}
    folder, must_name_run = found
    try:
        doc = _report_doc(folder)
        if must_name_run and doc.get("run_id") != record.run_id:
            raise NoReport("report.json of another run")
    except NoReport:
        return {"review": True, "written": False}
    listed, by_name = doc.get("findings"), doc.get("checks")
    findings = listed if isinstance(listed, list) else []
    checks = by_name if isinstance(by_name, dict) else {}
    present = [n for n in REPORTS if n == "report.json" or (folder / n).is_file()]
    return {
        "review": True,
        "written": True,
        "verdict": str(doc.get("verdict", "")),
        "reasons": [str(r) for r in doc.get("reasons") or [] if r is not None][:50],
        "counts": doc.get("counts") if isinstance(doc.get("counts"), dict) else {},
        "template": str(doc.get("template", "")),
        "generated_at": str(doc.get("generated_at", "")),
        "checks": {
            str(name): {
                "status": str(c.get("status", "")),
                "summary": str(c.get("summary", "")),
                "findings": c.get("findings"),
            }
            for name, c in list(checks.items())[:500]
            if isinstance(c, dict)
        },
        "findings": [_finding(f) for f in findings[:MAX_FINDINGS] if isinstance(f, dict)],
        "findings_total": len(findings),
        "files": present,
    }


def _finding(f: dict[str, Any]) -> dict[str, Any]:
    line = f.get("line")
    return {
        "check": str(f.get("check", "")),
        "severity": str(f.get("severity", "")),
        "file": str(f["file"]) if f.get("file") is not None else None,
        "line": line if isinstance(line, int) else None,
        "rule": str(f.get("rule", "")),
        "message": str(f.get("message", ""))[:4000],
    }
