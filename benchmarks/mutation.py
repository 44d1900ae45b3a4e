"""Does the tests check's impact selection (`impacted: map`) ever let a failure through?

    python benchmarks/mutation.py                          # 20 mutants, tests/unit as the suite
    python benchmarks/mutation.py --tests "tests/unit tests/review/test_report.py" --since HEAD~40
    python benchmarks/mutation.py --json                   # one JSON line at the end only

What it does, on a throwaway clone of this repository (`git clone`, its committed HEAD):

1. The whole suite once through the tests check with `impacted: map` (no map yet: the whole
   suite runs and leaves the map in the clone's `.reviewflow/cache/testmap/`). Tests failing
   already are noted and never count as a catch.
2. Candidate lines: the lines of `src/**.py` added or changed by the commit range `--since`..HEAD
   (default: the last 40 commits), inside a function body, that a test executed (the map's
   per-file lines less its import-time ones), round-robin over the range's files.
3. One mutant at a time, in the clone's work tree: the first of these edits that applies to
   the line: a comparison flipped (`==`/`!=`, `<`/`>=`, `>`/`<=`, `is`/`is not`, `in`/`not in`),
   `True`/`False` swapped, `and`/`or` swapped, `+`/`-` swapped, an integer constant + 1, a
   `return X` made `return None`. The tests check runs with the selection; the mutant is
   caught when a test fails that did not fail before.
4. A mutant the selection did not catch is run against the whole suite (`pytest -x`): if the
   suite catches it, the selection let a failure through (a miss); if not, the mutant is one
   no test can see (skipped, and said so), and the next candidate line is tried.

Stops at `--mutants` (20) mutants the whole suite catches. Prints one JSON line per mutant and a
summary: caught / mutants, misses named, skipped ones and why, tests run per mutant.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "src"))  # the checker is this tree's, never the mutated clone's

from reviewflow.review.change import collect_change  # noqa: E402
from reviewflow.review.checks import testmap  # noqa: E402
from reviewflow.review.checks import tests as tests_check  # noqa: E402
from reviewflow.review.checks.base import CheckContext  # noqa: E402

SWAPS = {
    "==": "!=",
    "!=": "==",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
    "+": "-",
    "-": "+",
}
NAMES = {"True": "False", "False": "True", "and": "or", "or": "and"}
SKIP_FILES = ("src/reviewflow/review/testmap_plugin.py",)  # runs inside pytest: the map's own


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def changed_lines(clone: Path, since: str) -> dict[str, list[int]]:
    """Added or changed lines of src/**.py between `since` and HEAD, per file."""
    patch = git(clone, "diff", "-U0", "--no-color", "--no-ext-diff", since, "HEAD", "--", "src/")
    out: dict[str, list[int]] = {}
    current: list[int] | None = None
    for line in patch.splitlines():
        if line.startswith("+++ "):
            name = line[4:].removeprefix("b/")
            ok = name.endswith(".py") and name not in SKIP_FILES
            current = out.setdefault(name, []) if ok else None
        elif line.startswith("@@") and current is not None:
            m = re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)
            if m:
                start, count = int(m.group(1)), int(m.group(2) or 1)
                current.extend(range(start, start + count))
    return {p: lines for p, lines in out.items() if lines}


def mutate(source: str, line: int) -> tuple[str, str] | None:
    """(mutated source, what was done) for the first edit that applies to `line`."""
    text_lines = source.splitlines(keepends=True)
    if line > len(text_lines):
        return None
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.start[0] == line and t.end[0] == line
        ]
    except (tokenize.TokenError, SyntaxError):
        return None
    raw = text_lines[line - 1]
    stripped = raw.strip()
    if stripped.startswith(("import ", "from ", "#", "@", "def ", "class ", "async def ")):
        return None
    names = [t.string for t in tokens]
    candidates: list[tuple[int, int, str, str]] = []
    for i, t in enumerate(tokens):
        col, end = t.start[1], t.end[1]
        if t.type == tokenize.OP and t.string in SWAPS:
            if t.string in ("+", "-") and (i == 0 or tokens[i - 1].type == tokenize.OP):
                continue  # unary sign
            candidates.append((col, end, SWAPS[t.string], f"{t.string} -> {SWAPS[t.string]}"))
        elif t.type == tokenize.NAME and t.string in NAMES:
            candidates.append((col, end, NAMES[t.string], f"{t.string} -> {NAMES[t.string]}"))
        elif t.type == tokenize.NAME and t.string == "is":
            if i + 1 < len(tokens) and tokens[i + 1].string == "not":
                candidates.append((col, tokens[i + 1].end[1], "is", "is not -> is"))
            else:
                candidates.append((col, end, "is not", "is -> is not"))
        elif t.type == tokenize.NAME and t.string == "in" and "for" not in names[:i]:
            if i > 0 and tokens[i - 1].string == "not":
                candidates.append((tokens[i - 1].start[1], end, "in", "not in -> in"))
            else:
                candidates.append((col, end, "not in", "in -> not in"))
        elif t.type == tokenize.NUMBER and re.fullmatch(r"\d+", t.string):
            candidates.append(
                (col, end, str(int(t.string) + 1), f"{t.string} -> {int(t.string) + 1}")
            )
    if not candidates and stripped.startswith("return ") and stripped != "return None":
        indent = raw[: len(raw) - len(raw.lstrip())]
        if stripped.endswith(("(", "[", "{", ",", "\\")):
            return None
        new = source.replace(raw, f"{indent}return None\n", 1)
        return (new, "return X -> return None") if _differs(source, new) else None
    for col, end, repl, what in candidates:
        mutated_line = raw[:col] + repl + raw[end:]
        new = "".join([*text_lines[: line - 1], mutated_line, *text_lines[line:]])
        if _differs(source, new):
            return new, what
    return None


def body_lines(path: Path) -> set[int]:
    try:
        return testmap._body_lines(path.read_bytes()) or set()
    except OSError:
        return set()


def _differs(old: str, new: str) -> bool:
    import ast

    try:
        return ast.dump(ast.parse(old)) != ast.dump(ast.parse(new))
    except SyntaxError:
        return False


def run_check(clone: Path, command: list[str], parallel: bool, base: str | None = None) -> Any:
    change = collect_change(clone, base=base)
    # inline: the baseline's whole-suite run leaves the map at once (the mutants need it).
    options = {"command": command, "impacted": "map", "parallel": parallel, "record_map": "inline"}
    ctx = CheckContext(check="tests", root=clone, change=change, options=options)
    t0 = time.perf_counter()
    result = asyncio.run(tests_check.tests(ctx))
    return result, time.perf_counter() - t0


def failed_tests(result: Any) -> set[str]:
    names = set()
    for f in result.findings:
        if f.rule in ("test-failed", "test-error"):
            m = re.match(r"test (\S+) (?:failed|errored)", f.message)
            names.add(m.group(1) if m else f.message)
        elif f.rule == "test-failed":
            names.add(f.message)
    return names


def whole_suite_catches(
    clone: Path, tests: list[str], known: set[str], env: dict[str, str]
) -> bool:
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-cov"]
    argv += [*tests, *(f"--deselect={t}" for t in sorted(known))]
    done = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True)
    return done.returncode == 1


def spread(files: dict[str, list[int]]) -> list[tuple[str, int]]:
    """Candidate lines, round-robin over the files (each file's lines in order)."""
    queues = [[(p, n) for n in lines] for p, lines in sorted(files.items())]
    out: list[tuple[str, int]] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", default="tests/unit", help="the suite (default tests/unit)")
    parser.add_argument("--since", default="HEAD~40", help="commit range start (HEAD~40)")
    parser.add_argument("--mutants", type=int, default=20, help="mutants to catch (20)")
    parser.add_argument("--max-tries", type=int, default=60, help="candidate lines at most (60)")
    parser.add_argument("--parallel", action="store_true", help="pytest-xdist as the check would")
    parser.add_argument("--repo", type=Path, default=PROJECT)
    parser.add_argument("--json", action="store_true", help="only the summary, as one JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    parser.add_argument(
        "--clone",
        type=Path,
        help="reuse this clone (kept by an earlier --keep run) and its coverage map",
    )
    args = parser.parse_args(argv)
    say = (lambda obj: None) if args.json else (lambda obj: print(json.dumps(obj), flush=True))

    if args.clone is not None:
        clone = args.clone.resolve()
        tmp, args.keep = clone.parent, True
        git(clone, "checkout", "-q", "--", ".")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="rfbench-mutation-"))
        clone = tmp / "repo"
        subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(clone / "src")
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # the tests the check runs import the clone
    tests = args.tests.split()
    command = ["pytest", "-q", *tests]
    since = git(clone, "rev-parse", args.since).strip()
    head = git(clone, "rev-parse", "HEAD").strip()
    summary: dict[str, Any] = {
        "kind": "summary",
        "head": head[:7],
        "since": f"{args.since} ({since[:7]})",
        "tests": tests,
        "loadavg_start": os.getloadavg(),
    }
    try:
        doc = testmap.load(clone, command) if args.clone is not None else None
        if doc is None:
            baseline, cold_s = run_check(clone, command, args.parallel, base=since)
            known, said = failed_tests(baseline), baseline.summary
        else:  # the kept clone's map: its whole-suite run is the baseline
            cold_s, known, said = 0.0, set(), "the kept clone's coverage map"
        doc = testmap.load(clone, command)
        if doc is None:
            raise SystemExit(f"no coverage map was made: {baseline.summary}")
        summary["baseline"] = {
            "summary": said,
            "seconds": round(cold_s, 2),
            "tests": len(doc["tests"]),
            "failing_before": sorted(known),
        }
        say({"kind": "baseline", **summary["baseline"]})
        # Lines the tests ran (not only the imports): a mutant there can be seen by a test.
        executed = {
            p: set(e.get("lines", ())) - set(e.get("import", ())) for p, e in doc["files"].items()
        }
        # Inside function bodies: what a review of real work changes most (a changed default
        # or constant at module level goes to the import graph and runs most of the suite).
        lines = {
            p: [n for n in ns if n in executed.get(p, set()) and n in body_lines(clone / p)]
            for p, ns in changed_lines(clone, since).items()
        }
        candidates = spread({p: ns for p, ns in lines.items() if ns})
        summary["candidate_lines"] = len(candidates)
        results: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        tries = 0
        for path, line in candidates:
            if len(results) >= args.mutants or tries >= args.max_tries:
                break
            target = clone / path
            original = target.read_text(encoding="utf-8")
            made = mutate(original, line)
            if made is None:
                continue
            tries += 1
            new, what = made
            target.write_text(new, encoding="utf-8")
            try:
                result, seconds = run_check(clone, command, args.parallel)
                new_failures = failed_tests(result) - known
                caught = bool(new_failures) or (
                    result.status == "failed" and result.metrics.get("tests_failed", 0) > 0
                )
                entry = {
                    "file": path,
                    "line": line,
                    "mutation": what,
                    "selection": result.metrics.get("test_selection", result.summary),
                    "tests_run": result.metrics.get("tests_collected"),
                    "seconds": round(seconds, 2),
                    "caught": caught,
                    "failed": sorted(new_failures)[:3],
                }
                if not caught:
                    if (entry["tests_run"] or 0) >= len(doc["tests"]):
                        skipped.append({**entry, "why": "the whole suite ran and missed it"})
                        say({"kind": "skipped", **skipped[-1]})
                        continue
                    if whole_suite_catches(clone, tests, known, env):
                        entry["miss"] = True  # the selection let it through
                    else:
                        skipped.append({**entry, "why": "the whole suite does not catch it"})
                        say({"kind": "skipped", **skipped[-1]})
                        continue
                results.append(entry)
                say({"kind": "mutant", **entry})
            finally:
                target.write_text(original, encoding="utf-8")
        caught = sum(1 for r in results if r["caught"])
        summary.update(
            mutants=len(results),
            caught=caught,
            misses=[f"{r['file']}:{r['line']} {r['mutation']}" for r in results if not r["caught"]],
            skipped=len(skipped),
            skipped_lines=[f"{s['file']}:{s['line']} {s['mutation']}" for s in skipped],
            tests_run_per_mutant=[r["tests_run"] for r in results],
            seconds_per_mutant=[r["seconds"] for r in results],
            loadavg_end=os.getloadavg(),
        )
        print(json.dumps(summary), flush=True)
        if not args.json:
            print(
                f"caught {caught}/{len(results)} mutants with the impact selection "
                f"({len(skipped)} skipped: not caught by the whole suite either); "
                f"whole suite: {summary['baseline']['tests']} tests in {cold_s:.1f} s; "
                f"tests run per mutant: median "
                f"{sorted(summary['tests_run_per_mutant'])[len(results) // 2] if results else 0}",
                flush=True,
            )
        return summary
    finally:
        if args.keep:
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
