"""Grammar and style checks on real prose: findings per 1,000 words, by rule.

The corpus is the long descriptions (READMEs) of the packages installed next to reviewflow,
Markdown and reST, at least 150 words each: prose written by other people, offline. They are
added as new files on a branch of a throwaway git repository, so every line is a changed
line, and the `grammar` and `style` checks run on them as a review runs them (style after
grammar). Prints one table per check and one JSON line; `--dump FILE` writes every finding
(file, line, rule, message, the line's text) for reading by hand.

    python benchmarks/prose.py [--dump findings.jsonl] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import subprocess
import sys
import tempfile
import time
from importlib.metadata import distributions
from pathlib import Path

from reviewflow.review.change import collect_change
from reviewflow.review.checks import markup, prose
from reviewflow.review.checks.base import CheckContext
from reviewflow.review.findings import CheckResult

MIN_WORDS = 150


def corpus(limit: int | None) -> dict[str, str]:
    """{file name: text} of the installed packages' long descriptions."""
    docs: dict[str, str] = {}
    for dist in sorted(distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        name = (dist.metadata["Name"] or "").lower().replace("-", "_")
        if not name or name == "reviewflow":
            continue
        body = dist.metadata.get_payload() or dist.metadata["Description"] or ""  # type: ignore[attr-defined]
        kind = (dist.metadata["Description-Content-Type"] or "").lower()
        suffix = ".md" if "markdown" in kind else ".rst" if ("rst" in kind or not kind) else ""
        if not suffix or not body.strip():
            continue
        rel = f"docs/{name}{suffix}"
        doc = markup.parse(rel, body)
        if words(doc) >= MIN_WORDS and rel not in docs:
            docs[rel] = body
        if limit and len(docs) >= limit:
            break
    return docs


def words(doc: markup.Document) -> int:
    return markup.count_words(" ".join(t for _, t in markup.paragraphs(doc)))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def git(root: Path, *args: str) -> None:
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com", "HOME": "/"}
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", type=Path, help="write every finding here (JSON lines)")
    parser.add_argument("--limit", type=int, help="at most this many documents")
    args = parser.parse_args()
    docs = corpus(args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        git(root, "init", "-q", "-b", "main")
        (root / "README.md").write_text("# corpus\n", encoding="utf-8")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "base")
        git(root, "checkout", "-q", "-b", "corpus")
        for rel, text in docs.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "corpus")
        change = collect_change(root)
        total = sum(words(markup.parse(rel, text)) for rel, text in docs.items())
        results: dict[str, CheckResult] = {}
        seconds: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name in ("grammar", "style"):
            ctx = CheckContext(check=name, root=root, change=change, upstream=dict(results))
            start, used = time.perf_counter(), _children_cpu()
            results[name] = asyncio.run(getattr(prose, name)(ctx))
            seconds[name] = time.perf_counter() - start
            cpu[name] = _children_cpu() - used
        lines = {rel: text.splitlines() for rel, text in docs.items()}
    md = sum(1 for rel in docs if rel.endswith(".md"))
    print(f"{len(docs)} documents ({md} Markdown, {len(docs) - md} reST), {total} words")
    summary: dict[str, object] = {"documents": len(docs), "words": total}
    for name, result in results.items():
        by_rule = collections.Counter(f.rule for f in result.findings)
        count = len(result.findings)
        per_k = 1000 * count / max(1, total)
        flagged = len({f.file for f in result.findings})
        print(
            f"\n{name}: {count} findings, {per_k:.2f} per 1,000 words, "
            f"{flagged}/{len(docs)} documents with any, {seconds[name]:.1f} s "
            f"({cpu[name]:.1f} s CPU in the tool)"
        )
        for rule, n in by_rule.most_common():
            print(f"  {n:5d}  {rule}")
        summary[name] = {
            "findings": count,
            "per_1000_words": round(per_k, 2),
            "documents_flagged": flagged,
            "seconds": round(seconds[name], 2),
            "tool_cpu_seconds": round(cpu[name], 2),
            "rules": dict(by_rule.most_common()),
        }
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as fh:
            for result in results.values():
                for f in result.findings:
                    text = lines[f.file or ""][(f.line or 1) - 1] if f.file in lines else ""
                    fh.write(json.dumps({**f.model_dump(), "text": text}) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
