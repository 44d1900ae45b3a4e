"""Repository checks that need nothing but Python: each is a `python` task.

Every check takes `params.path` (default: the current directory), looks at the files git tracks
there (or, outside a git work tree, every file but the usual build and tool folders), and returns
a JSON result. A check that finds a blocking problem raises CheckFailed (not retried).
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

from ..errors import TaskFailed
from ..statedir import make_dirs

SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".reviewflow",
    "build",
    "dist",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    ".tox",
}
MAX_REPORTED = 20
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),
}


class CheckFailed(TaskFailed):
    """A check found a problem that should block the review (retrying will not help)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def _root(ctx: Any) -> Path:
    return Path(ctx.params.get("path", ".")).resolve()


def tracked_files(root: Path) -> list[Path]:
    """Files under `root` that git tracks, or all files outside the usual tool folders."""
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        files = [root / p for p in out.decode("utf-8", "replace").split("\0") if p]
        return [f for f in files if f.is_file()]
    except (OSError, subprocess.SubprocessError):
        return [
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part in SKIP_DIRS for part in p.relative_to(root).parts)
        ]


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def syntax(ctx: Any) -> dict[str, Any]:
    """Every Python file parses."""
    root = _root(ctx)
    files = [f for f in tracked_files(root) if f.suffix == ".py"]
    errors = []
    for f in files:
        source = _text(f)
        if source is None:
            continue
        try:
            ast.parse(source, filename=str(f))
        except SyntaxError as exc:
            errors.append(f"{_rel(f, root)}:{exc.lineno}: {exc.msg}")
    if errors:
        raise CheckFailed(f"{len(errors)} file(s) with syntax errors: " + "; ".join(errors[:5]))
    return {"python_files": len(files), "errors": []}


def style(ctx: Any) -> dict[str, Any]:
    """Trailing whitespace, tabs in Python, over-long lines, missing final newline (advice)."""
    root = _root(ctx)
    max_len = int(ctx.params.get("max_line_length", 120))
    findings: list[str] = []
    counts = {"trailing_whitespace": 0, "tabs": 0, "long_lines": 0, "no_final_newline": 0}
    for f in tracked_files(root):
        if f.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".sh"}:
            continue
        text = _text(f)
        if not text:
            continue
        if not text.endswith("\n"):
            counts["no_final_newline"] += 1
            findings.append(f"{_rel(f, root)}: no newline at end of file")
        for n, line in enumerate(text.splitlines(), 1):
            if line != line.rstrip():
                counts["trailing_whitespace"] += 1
                findings.append(f"{_rel(f, root)}:{n}: trailing whitespace")
            if f.suffix == ".py" and "\t" in line[: len(line) - len(line.lstrip())]:
                counts["tabs"] += 1
                findings.append(f"{_rel(f, root)}:{n}: tab indentation")
            if f.suffix == ".py" and len(line) > max_len:
                counts["long_lines"] += 1
                findings.append(f"{_rel(f, root)}:{n}: line longer than {max_len}")
    if ctx.params.get("strict") and findings:
        raise CheckFailed(f"{len(findings)} style finding(s): " + "; ".join(findings[:5]))
    return {"counts": counts, "findings": findings[:MAX_REPORTED]}


def secrets(ctx: Any) -> dict[str, Any]:
    """No private keys or well-known token formats committed."""
    root = _root(ctx)
    hits = []
    for f in tracked_files(root):
        text = _text(f)
        if not text:
            continue
        for label, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                hits.append(f"{_rel(f, root)}:{line}: {label}")
    if hits:
        raise CheckFailed(f"{len(hits)} possible secret(s): " + "; ".join(hits[:5]))
    return {"findings": []}


def large_files(ctx: Any) -> dict[str, Any]:
    """No file above `params.max_kib` (default 1024 KiB)."""
    root = _root(ctx)
    limit = int(ctx.params.get("max_kib", 1024)) * 1024
    big = [
        f"{_rel(f, root)} ({f.stat().st_size // 1024} KiB)"
        for f in tracked_files(root)
        if f.stat().st_size > limit
    ]
    if big:
        raise CheckFailed(f"{len(big)} file(s) over {limit // 1024} KiB: " + "; ".join(big[:5]))
    return {"files_checked": "all", "large": []}


def todos(ctx: Any) -> dict[str, Any]:
    """Count TODO / FIXME / XXX markers (advice, never fails)."""
    root = _root(ctx)
    marker = re.compile(r"\b(TODO|FIXME|XXX)\b")
    found = []
    for f in tracked_files(root):
        if f.suffix not in {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".js", ".ts"}:
            continue
        text = _text(f) or ""
        for n, line in enumerate(text.splitlines(), 1):
            if marker.search(line):
                found.append(f"{_rel(f, root)}:{n}")
    return {"count": len(found), "where": found[:MAX_REPORTED]}


def docs(ctx: Any) -> dict[str, Any]:
    """A README exists and says how to install and use the project."""
    root = _root(ctx)
    readmes = [p for p in root.iterdir() if p.is_file() and p.name.lower().startswith("readme")]
    if not readmes:
        raise CheckFailed("no README at the repository root")
    text = (_text(readmes[0]) or "").lower()
    missing = [w for w in ("install", "usage") if w not in text and f"{w}ing" not in text]
    return {"readme": readmes[0].name, "words": len(text.split()), "missing_topics": missing}


def summary(ctx: Any) -> dict[str, Any]:
    """Write a Markdown report of every check before it, passed or not (`trigger: all_done`)."""
    failures: dict[str, str] = dict(getattr(ctx, "failures", {}) or {})
    names = sorted(set(ctx.results) | set(failures))
    passed = [n for n in names if n not in failures]
    lines = [
        f"# Review {ctx.run_id}",
        "",
        f"**{len(passed)}/{len(names)} checks passed**"
        + (f" — failed: {', '.join(sorted(failures))}" if failures else ""),
        "",
    ]
    for name in names:
        mark = "FAILED" if name in failures else "passed"
        lines.append(f"## {name}: {mark}")
        if name in failures:
            lines.append(f"- error: {failures[name]}")
        result = ctx.results.get(name)
        if isinstance(result, dict):
            for key, value in result.items():
                if key == "output_tail":
                    value = " / ".join(str(value).strip().splitlines()[-5:])
                lines.append(f"- {key}: {value}")
        elif result is not None:
            lines.append(f"- {result}")
        lines.append("")
    report = "\n".join(lines)
    make_dirs(ctx.run_dir)
    path = ctx.run_dir / "summary.md"
    path.write_text(report, encoding="utf-8")
    return {"report": str(path), "passed": passed, "failed": sorted(failures)}
