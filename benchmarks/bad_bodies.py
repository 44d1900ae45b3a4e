"""CPU a POST /runs reader child spends on a 20,000-task body before it answers: a chain with one
unknown dependency, one with a cycle, and a valid one, as JSON and as YAML.

    PYTHONPATH=src python benchmarks/bad_bodies.py
    PYTHONPATH=src python benchmarks/bad_bodies.py --tasks 5000 --repeat 3

In this process (imports paid), the child's own steps: `parse_json` + `from_mapping`, or
`from_yaml`. CPU time (`time.process_time`), best of `--repeat`; on a busy machine wall time is a
multiple of it. Prints one JSON line per case and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import yaml

from reviewflow.server.submit import from_mapping, from_yaml, parse_json, plain_json


def workflow(n: int, kind: str) -> dict[str, Any]:
    tasks: dict[str, Any] = {
        f"t{i}": {"run": ["true"], "needs": [f"t{i - 1}"] if i else []} for i in range(n)
    }
    if kind == "bad":
        tasks[f"t{n - 1}"]["needs"] = ["nope"]
    elif kind == "cycle":
        tasks["t0"]["needs"] = [f"t{n - 1}"]
    return {"name": "big", "tasks": tasks}


def read(fmt: str, body: bytes) -> str:
    """The child's reading of `body`; returns "ok" or the error's first words."""
    try:
        if fmt == "json":
            data = parse_json(body)
            from_mapping(data, plain=plain_json(body))
        else:
            from_yaml(body)
    except Exception as exc:
        return str(getattr(exc, "detail", exc))[:80]
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps({"load_average": os.getloadavg()}))
    for kind in ("bad", "cycle", "ok"):
        doc = workflow(args.tasks, kind)
        for fmt in ("json", "yaml"):
            body = json.dumps(doc).encode() if fmt == "json" else yaml.safe_dump(doc).encode()
            best = float("inf")
            answer = ""
            for _ in range(args.repeat):
                start = time.process_time()
                answer = read(fmt, body)
                best = min(best, time.process_time() - start)
            print(
                json.dumps({"case": kind, "format": fmt, "cpu_s": round(best, 3), "answer": answer})
            )
    print(json.dumps({"load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
