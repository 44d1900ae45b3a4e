"""The server stays responsive while it reads a big workflow: /health latency during a POST.

Starts `reviewflow serve` on loopback (a SQLite file in a temporary folder), sends one big
workflow (N chained shell tasks whose last one names an unknown dependency, so it is refused
with 422 after being read in full) as YAML and as JSON, and polls /health every 20 ms until the
POST is answered (and `--after` seconds more: a valid run's start). Reports the POST's time and
the slowest /health answer meanwhile.

    python benchmarks/server_loop.py                 # 20,000 tasks
    python benchmarks/server_loop.py --tasks 5000
    python benchmarks/server_loop.py --valid --formats json --after 10   # stored and executed

Prints one JSON line per case, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

TOKEN = "bench-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _workflow(n: int, valid: bool) -> dict[str, Any]:
    tasks = {f"t{i}": {"run": ["true"], "needs": [f"t{i - 1}"] if i else []} for i in range(n)}
    if not valid:
        tasks[f"t{n - 1}"]["needs"] = ["nope"]
    return {"name": "big", "tasks": tasks}


def _case(url: str, name: str, body: bytes, ctype: str, after: float) -> dict[str, Any]:
    answer: dict[str, Any] = {}

    def post() -> None:
        start = time.perf_counter()
        with httpx.Client(timeout=300) as http:
            resp = http.post(
                f"{url}/runs",
                content=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype},
            )
        answer["status"] = resp.status_code
        answer["seconds"] = time.perf_counter() - start
        answer["detail"] = resp.text[:120]

    thread = threading.Thread(target=post)
    thread.start()
    worst = 0.0
    probes = 0
    with httpx.Client(timeout=300) as http:
        until = None
        while thread.is_alive() or until is None or time.monotonic() < until:
            if until is None and not thread.is_alive():
                until = time.monotonic() + after
            start = time.perf_counter()
            http.get(f"{url}/health").raise_for_status()
            worst = max(worst, time.perf_counter() - start)
            probes += 1
            time.sleep(0.02)
    thread.join()
    return {
        "case": name,
        "body_bytes": len(body),
        "post_status": answer["status"],
        "post_s": round(answer["seconds"], 3),
        "post_answer": answer["detail"],
        "health_probes": probes,
        "health_max_ms": round(worst * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--formats", default="yaml,json", help="Comma-separated: yaml, json.")
    parser.add_argument(
        "--valid", action="store_true", help="A valid workflow (stored: 201) instead."
    )
    parser.add_argument(
        "--no-execute", action="store_true", help="Serve with --no-execute (store runs only)."
    )
    parser.add_argument(
        "--after", type=float, default=0.0, help="Keep probing /health this long after the POST."
    )
    args = parser.parse_args()
    doc = _workflow(args.tasks, args.valid)
    bodies = {
        "yaml": (yaml.safe_dump(doc).encode(), "application/yaml"),
        "json": (json.dumps(doc).encode(), "application/json"),
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "REVIEWFLOW_API_TOKENS": TOKEN}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reviewflow",
                "serve",
                "--db",
                str(Path(tmp) / "rf.db"),
                "--port",
                str(port),
                "--max-body-bytes",
                str(64 * 1024 * 1024),
                *(["--no-execute"] if args.no_execute else []),
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            rows = [
                _case(url, f"{args.tasks} tasks, {name}", *bodies[name], args.after)
                for name in args.formats.split(",")
            ]
        finally:
            proc.terminate()
            proc.wait(30)
    for row in rows:
        print(json.dumps(row))
    print(f"\n{'case':<22} {'body':>10} {'status':>6} {'POST s':>8} {'/health max ms':>15}")
    for r in rows:
        print(
            f"{r['case']:<22} {r['body_bytes']:>10} {r['post_status']:>6} {r['post_s']:>8}"
            f" {r['health_max_ms']:>15}"
        )


if __name__ == "__main__":
    main()
