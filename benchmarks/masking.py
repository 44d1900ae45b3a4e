"""Secret masking: what finding a change's secret values costs each review process.

Every check task of a review finds the change's secret values before it stores anything
(`reviewflow.review.masking`), so this cost is paid once per process (then cached per file
version). A throwaway work tree of `--files` Python files of `--lines` lines each, one in ten
holding a credential, is scanned three ways:

- `full`: detect-secrets' whole-file scan of every file (what the secrets check runs);
- `cold`: `Masker.for_change`, first call (only lines that could hold a secret go to
  detect-secrets, plus the AST and private-key detectors);
- `warm`: the same call again (what the other check tasks of the process pay).

    python benchmarks/masking.py                       # 100 files x 250 lines, 3 runs
    python benchmarks/masking.py --files 300 --lines 400

Prints one JSON line per way (best of --repeat, seconds), then a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from reviewflow.review import masking
from reviewflow.review.change import Change, ChangedFile
from reviewflow.review.checks.code import _scan_secrets

BODY = '''
def handler_{i}_{j}(request, limit=10):
    """Serve one request."""
    items = [x for x in request.items if x.size < limit]
    return {{"count": len(items), "name": "handler-{j}"}}
'''


def make_tree(root: Path, files: int, lines: int) -> Change:
    """`files` Python files of about `lines` lines; every tenth has a password and a token."""
    changed = []
    for i in range(files):
        parts, j = [], 0
        while sum(p.count("\n") for p in parts) < lines:
            parts.append(BODY.format(i=i, j=j))
            j += 1
        if i % 10 == 0:
            parts.append(f'\nDB_PASSWORD = "Zr8vQm2L{i:04d}xT9wKp4N"\n')
            parts.append(f'API_TOKEN = "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsT{i:04d}"\n')
        rel = f"pkg/module_{i:04d}.py"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(parts), encoding="utf-8")
        changed.append(ChangedFile(path=rel, status="added"))
    return Change(root=str(root), base="0" * 40, base_ref="bench", head=None, dirty=True,
                  files=changed)  # fmt: skip


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        masking._CACHE.clear()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--lines", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        change = make_tree(root, args.files, args.lines)
        paths = [f.path for f in change.files]
        total = sum(len((root / p).read_text().splitlines()) for p in paths)
        values = masking.Masker.for_change(change).values
        rows = {
            "full": best(lambda: _scan_secrets(root, paths), args.repeat),
            "cold": best(lambda: masking.Masker.for_change(change), args.repeat),
        }
        masking.Masker.for_change(change)
        start = time.perf_counter()
        masking.Masker.for_change(change)
        rows["warm"] = time.perf_counter() - start
    for way, seconds in rows.items():
        print(json.dumps({"way": way, "files": args.files, "lines": total,
                          "seconds": round(seconds, 4), "values": len(values)}))  # fmt: skip
    print(f"\n{'way':<6} {'files':>6} {'lines':>7} {'seconds':>9}", file=sys.stderr)
    for way, seconds in rows.items():
        print(f"{way:<6} {args.files:>6} {total:>7} {seconds:>9.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
