"""The `dependencies` check: audit the pinned dependencies of changed dependency files.

The dependency files come from the pull request, so nothing in them is installed, built or
resolved: pip would run a package's build code to resolve a requirement (`-e .`, an sdist, a
git URL). The check reads the exact pins (`name==version`) itself from requirements files,
pyproject.toml, setup.cfg, Pipfile and the lock files, writes them to a requirements file of its
own and has pip-audit look those up with `--no-deps --disable-pip`. A requirement that is not
pinned to one version cannot be audited that way and is reported as info.

pip-audit reports a dependency it cannot look up as skipped and still says "No known
vulnerabilities found", so an unreachable service (or a mirror that answers without
vulnerability data) would look like a pass. Before auditing, the check therefore asks the
service about a release with known vulnerabilities; when that answer does not come back with
them, the check is skipped (`skipped: service unreachable`), never passed.

Options:
    service          vulnerability service: pypi or osv (default pypi)
    connect_timeout  seconds to wait for a connection to the service (default 3)
    timeout          seconds pip-audit (and the probe) wait for an answer (default 15)
    osv_url          the OSV query endpoint, for a mirror (default https://api.osv.dev/v1/query)
    ignore_vulns     vulnerability ids not to report, e.g. ["PYSEC-2023-1"] (default none)
"""

from __future__ import annotations

import asyncio
import configparser
import http.client
import json
import re
import socket
import ssl
import tempfile
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

from ..findings import CheckResult, Finding, clean_message
from .base import CheckContext

DEFAULT_SERVICE = "pypi"
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_TIMEOUT = 15.0
DEFAULT_OSV_URL = "https://api.osv.dev/v1/query"
SERVICES = ("pypi", "osv")
CANARY = ("requests", "2.19.0")
"""A release with published vulnerabilities (PYSEC-2018-28, CVE-2018-18074)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A question to the vulnerability service whose answer must list vulnerabilities."""

    url: str
    body: bytes | None
    key: str
    """The answer's list of vulnerabilities."""

    @classmethod
    def for_service(cls, service: str, osv_url: str = DEFAULT_OSV_URL) -> Probe:
        """Ask what pip-audit would ask: the same service, the same endpoint."""
        if service == "osv":
            query = {"package": {"name": CANARY[0], "ecosystem": "PyPI"}, "version": CANARY[1]}
            return cls(osv_url, json.dumps(query).encode(), "vulns")
        return cls(f"https://pypi.org/pypi/{CANARY[0]}/{CANARY[1]}/json", None, "vulnerabilities")


LOCK_FILES = ("poetry.lock", "uv.lock", "pdm.lock")
_UNREACHABLE = (
    "could not connect",
    "connectionerror",
    "connection error",
    "max retries",
    "name or service not known",
    "temporary failure in name resolution",
    "failed to establish a new connection",
    "timed out",
    "network is unreachable",
    "your network may be blocking",
    "serviceerror",
    "server error",
)
_PIN_OPS = ("==", "===")
_REQ_OPTION = re.compile(r"\s+--?[A-Za-z]")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One dependency named in one file: pinned when `version` is set."""

    name: str
    """Canonical name (`typing-extensions`)."""
    spec: str
    """As written, for messages."""
    file: str
    line: int | None
    version: str | None = None
    """The exact pinned version, normalised; None when the requirement is a range or a URL."""


async def dependencies(ctx: CheckContext) -> CheckResult:
    """Audit the exact pins of the changed dependency files with pip-audit."""
    root = Path(ctx.root)
    files = [
        p
        for p in ctx.files()
        if dependency_kind(p) is not None and (root / p).is_file() and not (root / p).is_symlink()
    ]
    if not files:
        return ctx.skip("no dependency files changed")
    audit = ctx.python_module("pip_audit", "pip-audit")
    service = str(ctx.options.get("service", DEFAULT_SERVICE))
    if service not in SERVICES:
        raise ValueError(
            f"dependencies: option 'service' must be one of {', '.join(SERVICES)}, not {service!r}"
        )
    osv_url = str(ctx.options.get("osv_url", DEFAULT_OSV_URL))
    if urllib.parse.urlsplit(osv_url).scheme not in ("http", "https"):
        raise ValueError("dependencies: option 'osv_url' must be an http(s) URL")
    connect_timeout = float(ctx.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
    timeout = float(ctx.options.get("timeout", DEFAULT_TIMEOUT))
    ignore = _ids(ctx.options.get("ignore_vulns"))

    requirements: list[Requirement] = []
    notes: list[Finding] = []
    for path in files:
        try:
            requirements += read_requirements(path, (root / path).read_bytes())
        except (OSError, ValueError) as exc:
            notes.append(
                Finding(
                    check=ctx.check,
                    file=path,
                    severity="warning",
                    rule="unreadable",
                    message=clean_message(f"cannot read the dependencies: {exc}"),
                )
            )
    pinned = [r for r in requirements if r.version is not None]
    notes += [
        Finding(
            check=ctx.check,
            file=r.file,
            line=r.line,
            severity="info",
            rule="unpinned",
            message=clean_message(f"{r.spec} is not pinned to one version, so it was not audited"),
        )
        for r in requirements
        if r.version is None
    ]
    metrics: dict[str, Any] = {
        "files": files,
        "service": service,
        "dependencies": len(requirements),
        "pinned": len(pinned),
    }
    if not pinned:
        return CheckResult(
            check=ctx.check,
            status="skipped",
            findings=notes,
            metrics=metrics,
            summary="skipped: no pinned dependencies to audit",
        )

    probe = Probe.for_service(service, osv_url)
    if not await asyncio.to_thread(reachable, probe, connect_timeout, timeout):
        return ctx.skip("service unreachable")

    pins = sorted({(r.name, r.version) for r in pinned if r.version is not None})
    with tempfile.TemporaryDirectory(prefix="reviewflow-deps-") as tmp:
        listing = Path(tmp) / "requirements.txt"
        listing.write_text("".join(f"{n}=={v}\n" for n, v in pins), encoding="utf-8")
        argv = [
            *audit,
            "-r",
            str(listing),
            "-f",
            "json",
            "--progress-spinner",
            "off",
            "--timeout",
            f"{timeout:g}",
            "--no-deps",
            "--disable-pip",
            "-s",
            service,
            *(f"--ignore-vuln={i}" for i in ignore),
        ]
        if service == "osv":
            argv.append(f"--osv-url={osv_url}")
        run = await ctx.run_tool(argv, cwd=Path(tmp))
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        if any(hint in run.stderr.lower() for hint in _UNREACHABLE):
            return ctx.skip("service unreachable")
        raise RuntimeError(f"pip-audit failed (exit {run.returncode}): {_tail(run.stderr)}")

    vulns, skipped = parse_audit(report)
    if not any(pin in vulns for pin in pins):
        # Every lookup was skipped ("could not be audited"): a pass would claim what was
        # never checked.
        return ctx.skip("service unreachable")
    findings = audit_findings(pinned, vulns, skipped, ctx.check)
    metrics.update(
        audited=sum(1 for p in pins if p in vulns),
        vulnerabilities=sum(1 for f in findings if f.severity == "error"),
    )
    return ctx.result(
        [*findings, *notes],
        metrics=metrics,
        what=f"{metrics['audited']} pinned dependencies audited against {service}",
    )


def parse_audit(
    report: Mapping[str, Any],
) -> tuple[dict[tuple[str, str], list[Mapping[str, Any]]], dict[str, str]]:
    """(vulnerabilities per audited (name, version), skip reason per skipped name) from
    pip-audit's JSON report."""
    vulns: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for dep in report.get("dependencies") or ():
        if not isinstance(dep, Mapping) or not dep.get("name"):
            continue
        name = _canonical(str(dep["name"]))
        if "skip_reason" in dep or dep.get("version") is None:
            skipped[name] = str(dep.get("skip_reason") or "skipped")
            continue
        version = _normal_version(str(dep["version"])) or str(dep["version"])
        vulns[(name, version)] = [v for v in dep.get("vulns") or () if isinstance(v, Mapping)]
    return vulns, skipped


def audit_findings(
    pinned: Iterable[Requirement],
    vulns: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
    skipped: Mapping[str, str],
    check: str,
) -> list[Finding]:
    """An error per vulnerability of each pin, where the pin is written; info per pin that
    could not be looked up."""
    findings: list[Finding] = []
    for req in pinned:
        key = (req.name, req.version or "")
        if key not in vulns:
            if req.name in skipped:
                findings.append(
                    Finding(
                        check=check,
                        file=req.file,
                        line=req.line,
                        severity="info",
                        rule="not-audited",
                        message=clean_message(
                            f"{req.name} {req.version} was not audited: {skipped[req.name]}"
                        ),
                    )
                )
            continue
        for vuln in vulns[key]:
            vid = str(vuln.get("id") or "unknown")
            fixes = ", ".join(str(v) for v in vuln.get("fix_versions") or ()) or "none yet"
            aliases = [str(a) for a in vuln.get("aliases") or () if str(a) != vid]
            aka = f" ({', '.join(aliases)})" if aliases else ""
            findings.append(
                Finding(
                    check=check,
                    file=req.file,
                    line=req.line,
                    severity="error",
                    rule=vid,
                    message=clean_message(
                        f"{req.name} {req.version} has {vid}{aka} (fix: {fixes})"
                    ),
                )
            )
    return findings


def reachable(
    probe: Probe, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, timeout: float = DEFAULT_TIMEOUT
) -> bool:
    """Whether the service answers the canary question with vulnerabilities.

    A TCP connection alone proves little (a proxy, or a package mirror that serves project
    pages but no vulnerability data, accepts it), but it fails fast when there is no network.
    """
    url = urllib.parse.urlsplit(probe.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return False
    proxied = url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(
        url.hostname
    )
    if not proxied:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=connect_timeout).close()
        except OSError:
            return False
    request = urllib.request.Request(
        probe.url,
        data=probe.body,
        method="POST" if probe.body else "GET",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "reviewflow",
        },
    )
    context = ssl.create_default_context() if url.scheme == "https" else None
    try:
        # The scheme was checked above: http(s) only, never file://.
        with urllib.request.urlopen(
            request,
            timeout=timeout,  # nosec B310
            context=context,
        ) as answer:
            data = json.loads(answer.read(10_000_000))
    except (OSError, ValueError, http.client.HTTPException):
        return False
    return (
        isinstance(data, dict)
        and isinstance(data.get(probe.key), list)
        and len(data[probe.key]) > 0
    )


def dependency_kind(path: str) -> str | None:
    """Which reader understands the file at `path`, or None if it is no dependency file."""
    posix = PurePosixPath(path)
    name = posix.name
    if name == "pyproject.toml":
        return "pyproject"
    if name == "setup.cfg":
        return "setup.cfg"
    if name == "Pipfile":
        return "pipfile"
    if name == "Pipfile.lock":
        return "pipfile.lock"
    if name in LOCK_FILES:
        return "lock"
    if name == "pylock.toml" or fnmatch(name, "pylock.*.toml"):
        return "pylock"
    if name.endswith(".txt") and (
        fnmatch(name, "requirements*.txt") or "requirements" in posix.parts[:-1]
    ):
        return "requirements"
    return None


def read_requirements(path: str, data: bytes) -> list[Requirement]:
    """The dependencies named in one dependency file (ValueError if it cannot be parsed)."""
    return list(dict.fromkeys(r for r in _read(path, data) if r.name))


def _read(path: str, data: bytes) -> list[Requirement]:
    kind = dependency_kind(path)
    text = data.decode("utf-8-sig")
    lines = text.splitlines()
    if kind == "requirements":
        return _from_requirements_txt(path, lines)
    if kind == "pipfile.lock":
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        out: list[Requirement] = []
        for section, packages in doc.items():
            if section == "_meta" or not isinstance(packages, dict):
                continue
            for name, entry in packages.items():
                version = entry.get("version") if isinstance(entry, dict) else None
                spec = f"{name}{version}" if isinstance(version, str) else str(name)
                out.append(_requirement(spec, path, _find(lines, name, "json")))
        return out
    if kind == "setup.cfg":
        return _from_setup_cfg(path, text, lines)
    doc = _toml(text)
    if kind == "pyproject":
        return _from_pyproject(path, doc, lines)
    if kind == "pipfile":
        return [
            _poetry_style(name, value, path, lines)
            for section in ("packages", "dev-packages")
            for name, value in _table(doc, section).items()
        ]
    if kind == "lock":
        return _from_lock(path, doc.get("package"), lines)
    if kind == "pylock":
        return _from_lock(path, doc.get("packages"), lines)
    return []


def _from_requirements_txt(path: str, lines: list[str]) -> list[Requirement]:
    out: list[Requirement] = []
    start, pending = 0, ""
    for number, raw in enumerate(lines, start=1):
        if not pending:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical, pending = (pending + line).strip(), ""
        if not logical or logical.startswith("-"):
            continue  # options (-r, -e, --index-url ...) are never followed
        spec = _REQ_OPTION.split(logical, maxsplit=1)[0].strip()
        req = _requirement(spec, path, start)
        if req.name:
            out.append(req)
    return out


def _from_pyproject(path: str, doc: Mapping[str, Any], lines: list[str]) -> list[Requirement]:
    specs: list[str] = []
    project = _table(doc, "project")
    specs += [s for s in project.get("dependencies") or () if isinstance(s, str)]
    for group in _table(project, "optional-dependencies").values():
        specs += [s for s in group or () if isinstance(s, str)]
    for group in _table(doc, "dependency-groups").values():
        specs += [s for s in group or () if isinstance(s, str)]  # not {include-group = ...}
    out = [_requirement(s, path, None) for s in specs]
    out = [
        Requirement(r.name, r.spec, r.file, _find(lines, r.name, "quoted"), r.version)
        for r in out
        if r.name
    ]
    poetry = _table(_table(doc, "tool"), "poetry")
    tables = [
        _table(poetry, "dependencies"),
        _table(poetry, "dev-dependencies"),
        *(
            _table(g, "dependencies")
            for g in _table(poetry, "group").values()
            if isinstance(g, dict)
        ),
    ]
    for table in tables:
        out += [
            _poetry_style(name, value, path, lines)
            for name, value in table.items()
            if name.lower() != "python"
        ]
    return out


def _poetry_style(name: str, value: Any, path: str, lines: list[str]) -> Requirement:
    """`name = "1.2"` (Poetry: exactly 1.2), `"==1.2"`, `"^1.2"`, `"*"` or a table."""
    version = value.get("version") if isinstance(value, dict) else value
    line = _find(lines, name, "key")
    if isinstance(version, str) and re.fullmatch(r"\s*(==)?\s*[0-9][^,;*<>=!~^ ]*\s*", version):
        return _requirement(f"{name}=={version.strip().lstrip('=').strip()}", path, line)
    spec = f"{name} {version}" if isinstance(version, str) else name
    return Requirement(_canonical(name), spec.strip(), path, line)


def _from_lock(path: str, packages: Any, lines: list[str]) -> list[Requirement]:
    """[[package]] entries of poetry.lock, uv.lock, pdm.lock and pylock.toml."""
    out: list[Requirement] = []
    for entry in packages if isinstance(packages, list) else ():
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name, version = entry["name"], entry.get("version")
        if _off_index(entry) or not isinstance(version, str):
            continue  # the project itself, a checkout, a local path: nothing on an index
        out.append(_requirement(f"{name}=={version}", path, _find(lines, name, "name")))
    return out


def _off_index(entry: Mapping[str, Any]) -> bool:
    """A locked package that does not come from a package index.

    poetry.lock says so in `source.type`; uv.lock has `source = {registry = ...}` for index
    packages only; pdm.lock and pylock.toml name the checkout, path or URL in the entry.
    """
    if any(k in entry for k in ("vcs", "directory", "archive", "git", "path", "url")):
        return True
    source = entry.get("source")
    if not isinstance(source, dict):
        return False
    if "type" in source:
        return source["type"] in ("git", "directory", "file", "url")
    return "registry" not in source


def _from_setup_cfg(path: str, text: str, lines: list[str]) -> list[Requirement]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    values: list[str] = []
    if parser.has_option("options", "install_requires"):
        values.append(parser.get("options", "install_requires"))
    if parser.has_section("options.extras_require"):
        values += [v for _, v in parser.items("options.extras_require")]
    out: list[Requirement] = []
    for value in values:
        for raw in value.splitlines():
            spec = re.sub(r"(^|\s)#.*$", "", raw).strip()
            if spec:
                req = _requirement(spec, path, None)
                if req.name:
                    out.append(
                        Requirement(
                            req.name, req.spec, path, _find(lines, req.name, "bare"), req.version
                        )
                    )
    return out


def _requirement(spec: str, path: str, line: int | None) -> Requirement:
    """A PEP 508 requirement; pinned when its only specifier is `==X` (no wildcard) or
    `===X`. A local path or anything unparsable comes back with an empty name."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Pep508

    try:
        req = Pep508(spec)
    except InvalidRequirement:
        return Requirement("", spec, path, line)
    version: str | None = None
    specifiers = list(req.specifier)
    if (
        req.url is None
        and len(specifiers) == 1
        and specifiers[0].operator in _PIN_OPS
        and "*" not in specifiers[0].version
    ):
        version = _normal_version(specifiers[0].version)
    return Requirement(_canonical(req.name), spec, path, line, version)


def _find(lines: list[str], name: str, style: str) -> int | None:
    """The first line naming `name` in the way its file format does."""
    n = "[-_.]+".join(re.escape(p) for p in _canonical(name).split("-"))
    pattern = {
        "quoted": rf"""["']\s*{n}\s*(?:[\[<>=!~;@\s"',]|$)""",
        "bare": rf"^\s*{n}\s*(?:[\[<>=!~;@\s,]|$)",
        "key": rf"""^\s*["']?{n}["']?\s*=""",
        "name": rf"""^\s*name\s*=\s*["']{n}["']""",
        "json": rf'^\s*"{n}"\s*:',
    }[style]
    regex = re.compile(pattern, re.IGNORECASE)
    return next((i for i, line in enumerate(lines, start=1) if regex.search(line)), None)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _normal_version(version: str) -> str | None:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        return None


def _toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"invalid TOML: {exc}") from None


def _table(doc: Any, key: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    return value if isinstance(value, dict) else {}


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", v) for v in value
    ):
        raise ValueError("dependencies: option 'ignore_vulns' must be a list of ids")
    return list(value)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


__all__ = [
    "SERVICES",
    "Probe",
    "Requirement",
    "audit_findings",
    "dependencies",
    "dependency_kind",
    "parse_audit",
    "reachable",
    "read_requirements",
]
