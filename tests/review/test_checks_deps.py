"""The dependencies check: pins read from every kind of dependency file, audited by pip-audit.

This machine has no internet, and pip-audit then reports every dependency as "could not be
audited" and says "No known vulnerabilities found": the tests make sure that is a skip
(`skipped: service unreachable`), never a pass. Real audits run against a small OSV server on
localhost (pip-audit's `--osv-url`), so the whole path from file to finding is exercised.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import socket
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from gitrepo import branch_with, make_repo

from reviewflow.review.change import Change
from reviewflow.review.checks import deps
from reviewflow.review.checks.base import CheckContext, ToolMissing
from reviewflow.review.findings import CheckResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

REQUIREMENTS = """\
# the app
requests==2.19.0 \\
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000
flask>=1.0  # not pinned
-e .
-r other.txt
--index-url https://example.invalid/simple
Django==3.2.0 ; python_version >= "3.8"
./local/pkg
"""
PYPROJECT = """\
[project]
name = "demo"
version = "0.1"
dependencies = [
  "rich>=13",
  "PyYAML==5.3",
]

[project.optional-dependencies]
web = ["django==3.2.0"]

[dependency-groups]
dev = ["pytest==8.0.0", {include-group = "web"}]

[tool.poetry.dependencies]
python = "^3.11"
attrs = "23.1.0"
click = {version = "^8.0"}
"""
VULNS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("requests", "2.19.0"): [
        {
            "id": "PYSEC-2018-28",
            "aliases": ["CVE-2018-18074"],
            "summary": "Authorization header leak on redirect",
            "affected": [
                {
                    "package": {"name": "requests", "ecosystem": "PyPI"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}
                    ],
                }
            ],
        }
    ],
    ("django", "3.2.0"): [
        {
            "id": "GHSA-xxxx-yyyy-zzzz",
            "summary": "SQL injection",
            "affected": [
                {
                    "package": {"name": "django", "ecosystem": "PyPI"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [
                                {"introduced": "3.2"},
                                {"fixed": "3.2.14"},
                                {"introduced": "4.0"},
                                {"fixed": "4.0.6"},
                            ],
                        }
                    ],
                }
            ],
        }
    ],
    ("pyyaml", "5.3"): [
        {
            "id": "PYSEC-2020-96",
            "aliases": [],
            "affected": [{"package": {"name": "pyyaml", "ecosystem": "PyPI"}, "ranges": []}],
        }
    ],
}


def run(change: Change, options: Mapping[str, Any] | None = None) -> CheckResult:
    root = Path(change.root)
    ctx = CheckContext(
        check="dependencies",
        root=root,
        change=change,
        options=options or {},
        log_path=root.parent / "deps.log",
    )
    return asyncio.run(deps.dependencies(ctx))


def found(result: CheckResult) -> set[tuple[str | None, int | None, str, str]]:
    return {(f.file, f.line, f.rule, f.severity) for f in result.findings}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n", "app.py": "x = 1\n"})


class _OSV(BaseHTTPRequestHandler):
    """A tiny OSV query API: POST {"package": {"name"}, "version"} -> {"vulns": [...]}."""

    fail = False

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.fail and query["package"]["name"] != "requests":
            self.send_response(503)
            self.end_headers()
            return
        vulns = VULNS.get((query["package"]["name"], query["version"]), [])
        body = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def osv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # pip-audit's HTTP cache
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OSV)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()
        _OSV.fail = False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- whole check -----------------------------------------------------------------------------


def test_vulnerable_pins_are_errors_where_they_are_written(repo: Path, osv: str) -> None:
    change = branch_with(
        repo, {"requirements.txt": REQUIREMENTS, "pyproject.toml": PYPROJECT, "app.py": "x = 2\n"}
    )
    result = run(change, {"service": "osv", "osv_url": osv})
    assert result.status == "failed"
    assert found(result) == {
        ("requirements.txt", 2, "PYSEC-2018-28", "error"),
        ("requirements.txt", 8, "GHSA-xxxx-yyyy-zzzz", "error"),
        ("requirements.txt", 4, "unpinned", "info"),
        ("pyproject.toml", 6, "PYSEC-2020-96", "error"),
        ("pyproject.toml", 10, "GHSA-xxxx-yyyy-zzzz", "error"),
        ("pyproject.toml", 5, "unpinned", "info"),
        ("pyproject.toml", 18, "unpinned", "info"),
    }
    messages = {(f.file, f.rule): f.message for f in result.findings}
    assert (
        messages["requirements.txt", "PYSEC-2018-28"]
        == "requests 2.19.0 has PYSEC-2018-28 (CVE-2018-18074) (fix: 2.20.0)"
    )
    assert (
        messages["requirements.txt", "GHSA-xxxx-yyyy-zzzz"]
        == "django 3.2.0 has GHSA-xxxx-yyyy-zzzz (fix: 3.2.14, 4.0.6)"
    )
    assert (
        messages["pyproject.toml", "PYSEC-2020-96"] == "pyyaml 5.3 has PYSEC-2020-96 "
        "(fix: none yet)"
    )
    assert (
        messages["requirements.txt", "unpinned"]
        == "flask>=1.0 is not pinned to one version, so it was not audited"
    )
    assert result.metrics["audited"] == 5  # requests, django, pyyaml, pytest, attrs
    assert result.metrics["vulnerabilities"] == 4
    assert result.summary == "5 pinned dependencies audited against osv: 4 error(s), 0 warning(s)"


def test_ignored_vulnerabilities_and_clean_pins_pass(repo: Path, osv: str) -> None:
    change = branch_with(repo, {"requirements-dev.txt": "requests==2.19.0\nattrs==23.1.0\n"})
    result = run(change, {"service": "osv", "osv_url": osv, "ignore_vulns": ["PYSEC-2018-28"]})
    assert (result.status, result.findings) == ("passed", [])
    assert result.metrics["audited"] == 2


def test_unreachable_service_is_a_skip_never_a_pass(repo: Path) -> None:
    change = branch_with(repo, {"requirements.txt": "requests==2.19.0\n"})
    closed = f"http://127.0.0.1:{_closed_port()}/v1/query"
    result = run(change, {"service": "osv", "osv_url": closed, "connect_timeout": 1})
    assert (result.status, result.summary) == ("skipped", "skipped: service unreachable")


def test_default_service_from_this_machine(repo: Path) -> None:
    """For real: without internet (or behind a mirror without vulnerability data) pip-audit
    would report a false pass; the check says it could not look."""
    if deps.reachable(deps.Probe.for_service("pypi"), 3, 10):
        pytest.skip("pypi.org answers here: the unreachable path cannot be tested for real")
    change = branch_with(repo, {"requirements.txt": "requests==2.19.0\n"})
    result = run(change)
    assert (result.status, result.summary) == ("skipped", "skipped: service unreachable")
    assert result.findings == []


def test_nothing_audited_is_unreachable_even_when_the_probe_answers(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pip-audit's own false pass: every dependency "could not be audited", exit 0."""
    monkeypatch.setattr(deps, "reachable", lambda *a: True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    change = branch_with(repo, {"requirements.txt": "reviewflow-no-such-package-q7x==1.0\n"})
    result = run(change, {"timeout": 5})
    assert (result.status, result.summary) == ("skipped", "skipped: service unreachable")


def test_a_failing_service_is_unreachable_not_a_crash(repo: Path, osv: str) -> None:
    _OSV.fail = True  # the canary is answered, every other query gets a 503
    change = branch_with(repo, {"requirements.txt": "attrs==23.1.0\n"})
    result = run(change, {"service": "osv", "osv_url": osv})
    assert (result.status, result.summary) == ("skipped", "skipped: service unreachable")


def test_skips_without_dependency_files_or_pins(repo: Path) -> None:
    change = branch_with(repo, {"app.py": "x = 2\n", "docs/requirements.md": "# no\n"})
    result = run(change)
    assert (result.status, result.summary) == ("skipped", "skipped: no dependency files changed")
    change = branch_with(repo, {"requirements.txt": "flask>=1\n"}, name="ranges")
    result = run(change)
    assert (result.status, result.summary) == (
        "skipped",
        "skipped: no pinned dependencies to audit",
    )
    assert found(result) == {("requirements.txt", 1, "unpinned", "info")}


def test_unparsable_file_is_a_warning(repo: Path, osv: str) -> None:
    change = branch_with(
        repo, {"pyproject.toml": "[project\n", "requirements.txt": "attrs==23.1.0\n"}
    )
    result = run(change, {"service": "osv", "osv_url": osv})
    assert result.status == "passed"
    assert found(result) == {("pyproject.toml", None, "unreadable", "warning")}
    assert "invalid TOML" in result.findings[0].message


def test_options_are_checked(repo: Path) -> None:
    change = branch_with(repo, {"requirements.txt": "attrs==23.1.0\n"})
    with pytest.raises(ValueError, match="service"):
        run(change, {"service": "esms"})
    with pytest.raises(ValueError, match="osv_url"):
        run(change, {"service": "osv", "osv_url": "file:///etc/passwd"})
    with pytest.raises(ValueError, match="ignore_vulns"):
        run(change, {"ignore_vulns": ["--fix"]})


def test_missing_pip_audit(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    change = branch_with(repo, {"requirements.txt": "attrs==23.1.0\n"})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda mod, *a: None if mod == "pip_audit" else real(mod, *a)
    )
    with pytest.raises(ToolMissing) as caught:
        run(change)
    assert caught.value.tool == "pip-audit"


# --- probe -----------------------------------------------------------------------------------


def test_probe_needs_vulnerabilities_in_the_answer(osv: str) -> None:
    assert deps.reachable(deps.Probe.for_service("osv", osv), 2, 5)
    empty = deps.Probe(
        osv,
        json.dumps(
            {"package": {"name": "attrs", "ecosystem": "PyPI"}, "version": "23.1.0"}
        ).encode(),
        "vulns",
    )
    assert not deps.reachable(empty, 2, 5)
    closed = f"http://127.0.0.1:{_closed_port()}/v1/query"
    assert not deps.reachable(deps.Probe.for_service("osv", closed), 1, 1)
    assert not deps.reachable(deps.Probe("ftp://example.invalid/", None, "vulns"), 1, 1)


# --- parsing ---------------------------------------------------------------------------------


def pins(path: str, text: str) -> list[tuple[str, str | None, int | None]]:
    return [(r.name, r.version, r.line) for r in deps.read_requirements(path, text.encode())]


def test_dependency_kinds() -> None:
    kinds = {
        p: deps.dependency_kind(p)
        for p in (
            "requirements.txt",
            "requirements-dev.txt",
            "requirements/base.txt",
            "sub/pyproject.toml",
            "poetry.lock",
            "uv.lock",
            "pdm.lock",
            "Pipfile",
            "Pipfile.lock",
            "pylock.toml",
            "pylock.dev.toml",
            "setup.cfg",
            "setup.py",
            "yarn.lock",
            "notes.txt",
            "README.md",
        )
    }
    assert kinds == {
        "requirements.txt": "requirements",
        "requirements-dev.txt": "requirements",
        "requirements/base.txt": "requirements",
        "sub/pyproject.toml": "pyproject",
        "poetry.lock": "lock",
        "uv.lock": "lock",
        "pdm.lock": "lock",
        "Pipfile": "pipfile",
        "Pipfile.lock": "pipfile.lock",
        "pylock.toml": "pylock",
        "pylock.dev.toml": "pylock",
        "setup.cfg": "setup.cfg",
        "setup.py": None,
        "yarn.lock": None,
        "notes.txt": None,
        "README.md": None,
    }


def test_requirements_txt() -> None:
    assert pins("requirements.txt", REQUIREMENTS) == [
        ("requests", "2.19.0", 2),
        ("flask", None, 4),
        ("django", "3.2.0", 8),
    ]
    assert pins(
        "requirements.txt",
        "a===1.0\nb==1.*\nc==1.0,<2\nd[x]==01.0.0\ne @ https://x.invalid/e.whl\n",
    ) == [("a", "1.0", 1), ("b", None, 2), ("c", None, 3), ("d", "1.0.0", 4), ("e", None, 5)]


def test_pyproject() -> None:
    assert pins("pyproject.toml", PYPROJECT) == [
        ("rich", None, 5),
        ("pyyaml", "5.3", 6),
        ("django", "3.2.0", 10),
        ("pytest", "8.0.0", 13),
        ("attrs", "23.1.0", 17),
        ("click", None, 18),
    ]


def test_lock_files() -> None:
    poetry = (
        '[[package]]\nname = "Requests"\nversion = "2.19.0"\n\n'
        '[[package]]\nname = "mylib"\nversion = "1.0"\n[package.source]\ntype = "git"\n'
        'url = "https://x.invalid/mylib.git"\n\n'
        '[[package]]\nname = "private"\nversion = "2.0"\n[package.source]\n'
        'type = "legacy"\nurl = "https://pkgs.invalid/simple"\n'
    )
    assert pins("poetry.lock", poetry) == [("requests", "2.19.0", 2), ("private", "2.0", 13)]
    uv = (
        'version = 1\n\n[[package]]\nname = "demo"\nversion = "0.1"\n'
        'source = { editable = "." }\n\n[[package]]\nname = "attrs"\nversion = "23.1.0"\n'
        'source = { registry = "https://pypi.org/simple" }\n'
    )
    assert pins("uv.lock", uv) == [("attrs", "23.1.0", 9)]
    pylock = (
        'lock-version = "1.0"\n[[packages]]\nname = "attrs"\nversion = "23.1.0"\n'
        '[[packages]]\nname = "local"\ndirectory = { path = "." }\n'
    )
    assert pins("pylock.toml", pylock) == [("attrs", "23.1.0", 3)]
    pipfile_lock = json.dumps(
        {
            "_meta": {"hash": {}},
            "default": {"requests": {"version": "==2.19.0", "hashes": []}, "gitpkg": {"git": "x"}},
            "develop": {"pytest": {"version": "==8.0.0"}},
        },
        indent=4,
    )
    assert pins("Pipfile.lock", pipfile_lock) == [
        ("requests", "2.19.0", 6),
        ("gitpkg", None, 10),
        ("pytest", "8.0.0", 15),
    ]
    pipfile = (
        '[packages]\nrequests = "==2.19.0"\nflask = "*"\n[dev-packages]\n'
        'pytest = {version = "==8.0.0"}\n'
    )
    assert pins("Pipfile", pipfile) == [
        ("requests", "2.19.0", 2),
        ("flask", None, 3),
        ("pytest", "8.0.0", 5),
    ]


def test_setup_cfg() -> None:
    cfg = (
        "[metadata]\nname = demo\n\n[options]\ninstall_requires =\n    requests==2.19.0\n"
        "    click>=8  # cli\n\n[options.extras_require]\ntest =\n    pytest==8.0.0\n"
    )
    assert pins("setup.cfg", cfg) == [
        ("requests", "2.19.0", 6),
        ("click", None, 7),
        ("pytest", "8.0.0", 11),
    ]
    with pytest.raises(ValueError):
        deps.read_requirements("setup.cfg", b"no section\n")


def test_canned_pip_audit_report() -> None:
    report = {
        "dependencies": [
            {
                "name": "requests",
                "version": "2.19.0",
                "vulns": [
                    {
                        "id": "PYSEC-2018-28",
                        "fix_versions": ["2.20.0"],
                        "aliases": ["CVE-2018-18074", "PYSEC-2018-28"],
                        "description": "leak\x1b[31m",
                    }
                ],
            },
            {"name": "attrs", "version": "23.1.0", "vulns": []},
            {
                "name": "private-pkg",
                "skip_reason": "Dependency not found on PyPI and could not be "
                "audited: private-pkg (1.0)",
            },
        ],
        "fixes": [],
    }
    vulns, skipped = deps.parse_audit(report)
    assert set(vulns) == {("requests", "2.19.0"), ("attrs", "23.1.0")}
    assert set(skipped) == {"private-pkg"}
    pinned = [
        r
        for r in deps.read_requirements(
            "requirements.txt", b"attrs==23.1.0\nRequests==2.19.0\nprivate_pkg==1.0\n"
        )
    ]
    findings = deps.audit_findings(pinned, vulns, skipped, "dependencies")
    assert [(f.file, f.line, f.rule, f.severity, f.message) for f in findings] == [
        (
            "requirements.txt",
            2,
            "PYSEC-2018-28",
            "error",
            "requests 2.19.0 has PYSEC-2018-28 (CVE-2018-18074) (fix: 2.20.0)",
        ),
        (
            "requirements.txt",
            3,
            "not-audited",
            "info",
            "private-pkg 1.0 was not audited: Dependency not found on PyPI and could not be "
            "audited: private-pkg (1.0)",
        ),
    ]
