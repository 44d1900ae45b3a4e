"""Constants shared across layers: the engine, the workers, the server and the CLI.

Standard library only: every `reviewflow` command imports this module at start-up for its
options' defaults, so it must stay as light as a literal (no engine, no psycopg, no rich).
The modules that use them re-export them (`engine.DEFAULT_CONCURRENCY` still works).
"""

from __future__ import annotations

import re
from pathlib import Path

# The embedded engine (engine.py).
DEFAULT_RUNS_DIR = Path(".reviewflow") / "runs"
"""Where attempts' logs go, under the current directory (`runs/<run_id>/`)."""
DEFAULT_CONCURRENCY = 64
"""Tasks running at once per process (the global limit)."""
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
"""What a run id may be (`--run-id`, the API's paths)."""
ABANDONED = "another process took the run over"
ATTEMPT_TIMEOUT = "attempt timeout"
"""Compared by identity in the engine: set only by its attempt timer."""
CANNOT_START = "the run could not start"
CANNOT_ADVANCE = "the run could not go on"

# Workers on PostgreSQL (cluster/queue.py, cluster/worker.py).
DEFAULT_LEASE_TTL = 30.0
DEFAULT_MAX_LOST_ATTEMPTS = 3
DEFAULT_WORKER_CONCURRENCY = 8
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_GRACE = 30.0

# Views (terminal.py): runs with more tasks are summarised.
SUMMARY_ABOVE = 50

# GitHub (github.py, github_checks.py).
GITHUB_API_URL = "https://api.github.com"
GITHUB_MARKER = "<!-- reviewflow:report -->"
GITHUB_CHECK_NAME = "reviewflow"
