"""A webhook receiver for reviewflow's notifications, for trying them out (docs/notifications.md).

It listens on 127.0.0.1, checks each request's X-Reviewflow-Signature with the secret in
$HOOK_SECRET, drops a delivery id it has seen (a retry of something it already handled) and
prints one line per notification. With a command after `--`, it listens while that command runs
and exits with the command's exit code (1 if a signature was wrong):

    python examples/notify_receiver.py --port 8765 -- reviewflow notifications --deliver 10
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--secret-env", default="HOOK_SECRET")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND to run meanwhile")
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env, "").encode()
    seen: set[str] = set()
    bad: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            given = self.headers.get("X-Reviewflow-Signature", "")
            if secret and not hmac.compare_digest(given, expected):
                bad.append(self.headers.get("X-Reviewflow-Delivery", "?"))
                self.send_response(401)
                self.end_headers()
                return
            event = json.loads(body)
            with lock:
                duplicate = event["delivery_id"] in seen
                seen.add(event["delivery_id"])
            if not duplicate:
                task = f" task {event['task']}" if event.get("task") else ""
                print(
                    f"received {event['event']}: run {event['run_id']}{task}"
                    f" ({event.get('outcome') or event.get('state')}), signature ok",
                    flush=True,
                )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        server.serve_forever()
        return 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    code = subprocess.run(command, check=False).returncode
    server.shutdown()
    if bad:
        print(f"bad signature on {len(bad)} request(s)", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
