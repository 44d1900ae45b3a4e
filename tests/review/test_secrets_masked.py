"""No secret ever leaks: a value flagged as a credential is masked everywhere reviewflow writes.

One review of a change holding credentials in a file whose name says nothing (`settings.py`),
with real tools: detect-secrets, bandit (its log quotes the code), ruff, pytest (a failing
assertion prints the value), the public-API docs check (it quotes the signature
`connect(user, password='…')`), and a plugin check that prints the file, quotes a value cut
short, and fails with one in its error. Then every place is searched for each value and for
its first 8 characters: the three reports, the attempt logs, the events, `status --json` and
the bytes of the database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import commit, git, make_repo, write
from reviewproc import Reviewed, run_review

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# Built from pieces so that this file itself does not look like it holds a credential.
AWS_KEY_ID = "AKIA" + "Q7XK2M9PLR4TZW8N"
DB_PASSWORD = "Zr8vQm2L" + "xT9wKp4Nq"  # pragma: allowlist secret
DEFAULT_PASSWORD = "hX7mQ2vL" + "9pRt4KwZ"  # pragma: allowlist secret
GITHUB_TOKEN = "ghp_" + "1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ12"  # pragma: allowlist secret
# pragma: allowlist nextline secret
KEY_BODY = "MIIEowIBAAKCAQEA" + "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"
SECRETS = (AWS_KEY_ID, DB_PASSWORD, DEFAULT_PASSWORD, GITHUB_TOKEN, KEY_BODY)

SETTINGS = f'''"""Settings of the service."""

AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"
DB_PASSWORD = "{DB_PASSWORD}"


def connect(user, password="{DEFAULT_PASSWORD}"):
    """Open a connection."""
    return user, password


def login(token: str = "{GITHUB_TOKEN}"):
    """Log in."""
    return token
'''
DEPLOY_KEY = (
    "-----BEGIN RSA PRIVATE" + " KEY-----\n" + KEY_BODY + "\n" + KEY_BODY[::-1] + "\n"
    "-----END RSA PRIVATE" + " KEY-----\n"
)
TEST_SETTINGS = (
    "from pkg import settings\n\n\n"
    # pragma: allowlist nextline secret
    "def test_password():\n    assert settings.DB_PASSWORD == 'something else'\n"
)
PLUGIN = '''
import sys

from reviewflow.review.findings import Finding


async def leaky(ctx):
    """Prints the changed files into its log and quotes a value cut short in a finding."""
    code = "import sys; [print(open(p).read()) for p in sys.argv[1:]]"
    await ctx.run_tool([sys.executable, "-c", code, *ctx.files()])
    text = (ctx.root / "pkg" / "settings.py").read_text()
    start = text.index("DB_PASSWORD = ") + len("DB_PASSWORD = ") + 1
    return [
        Finding(
            check=ctx.check,
            file="pkg/settings.py",
            line=4,
            severity="warning",
            rule="quoted",
            message="password starts with " + text[start : start + 10] + "...",
        )
    ]


def broken(ctx):
    text = (ctx.root / "pkg" / "settings.py").read_text()
    raise RuntimeError("could not parse: " + text.splitlines()[2])


CHECKS = {"leaky": leaky, "broken": broken}
'''
TEMPLATE = """
name: strict
extends: pr
plugins: [plugins/]
checks:
  security: {when: always}
  secrets: {when: always}
  leaky: {when: always}
  broken: {when: always}
"""


def rf(cwd: Path, *args: str | Path) -> str:
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "reviewflow", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def leaky_review(tmp_path_factory: pytest.TempPathFactory) -> Reviewed:
    cwd = tmp_path_factory.mktemp("masked")
    repo = make_repo(cwd / "repo", {"README.md": "# service\n", "pkg/__init__.py": ""})
    git(repo, "checkout", "-q", "-b", "feature")
    write(
        repo,
        {
            "pkg/settings.py": SETTINGS,
            "deploy/deploy_key.pem": DEPLOY_KEY,
            "tests/test_settings.py": TEST_SETTINGS,
        },
    )
    commit(repo)
    write(cwd, {"strict.yaml": TEMPLATE, "plugins/leaks.py": PLUGIN})
    return run_review(cwd, repo, "--template", cwd / "strict.yaml", out=cwd / "out")


def places(r: Reviewed) -> dict[str, str]:
    """Every text reviewflow wrote or shows about the run."""
    run_id = r.report["run_id"]
    found = {"output": r.stdout + r.stderr}
    for path in [*r.out.rglob("*"), *(r.cwd / ".reviewflow").rglob("*")]:
        if path.is_file():
            found[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    for path in r.cwd.glob("rf.db*"):
        found[str(path)] = path.read_bytes().decode("latin-1")
    found["events"] = rf(r.cwd, "events", run_id, "--db", r.cwd / "rf.db")
    found["status"] = rf(r.cwd, "status", run_id, "--db", r.cwd / "rf.db", "--json")
    return found


def test_the_review_ran_every_check_that_sees_the_values(leaky_review: Reviewed) -> None:
    r = leaky_review
    assert r.code == 1, str(r)
    checks = r.report["checks"]
    assert {"security", "secrets", "docs", "tests", "leaky", "broken"} <= set(checks)
    assert checks["broken"]["status"] == "error"
    rules = {(f[0], f[3]) for f in r.findings}
    assert {
        ("secrets", "AWS Access Key"),
        ("security", "B107"),
        ("docs", "api-undocumented"),
        ("tests", "test-failed"),
        ("leaky", "quoted"),
    } <= rules
    logs = {p.name.split(".")[0] for p in (r.cwd / ".reviewflow" / "runs").rglob("*.log")}
    assert {"security", "tests", "leaky"} <= logs  # the logs that would quote them exist


@pytest.mark.parametrize("value", SECRETS, ids=["aws", "db", "default", "token", "key"])
def test_no_value_nor_its_first_8_characters_appears_anywhere(
    leaky_review: Reviewed, value: str
) -> None:
    leaked = [where for where, text in places(leaky_review).items() if value[:8] in text]
    assert leaked == [], f"{value[:4]}... found in {leaked}"


def test_quotes_of_values_are_masked_not_dropped(leaky_review: Reviewed) -> None:
    """A reader still sees what the finding is about."""
    messages = [(f["check"], f["message"]) for f in leaky_review.report["findings"]]
    docs = [m for c, m in messages if c == "docs" and "connect(" in m]
    assert docs and f"password='{DEFAULT_PASSWORD[:4]}****'" in docs[0]
    assert ("leaky", f"password starts with {DB_PASSWORD[:4]}****...") in messages
    error = json.dumps(leaky_review.report["checks"]["broken"])
    assert "could not parse: AWS_ACCESS_KEY_ID = " in error and "AKIA****" in error
