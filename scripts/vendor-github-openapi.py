#!/usr/bin/env python3
"""Re-extract tests/github/github-openapi.json from GitHub's official OpenAPI description.

The fake GitHub of the tests (tests/github/fakegithub.py) checks every request it receives
against the operations listed in OPERATIONS below. The whole description is 13 MB (and its
npm package 29 MB), so only those operations are vendored, with the parameters and schemas they
reference, and with what a request check does not read (responses, examples, prose) left out.

    python scripts/vendor-github-openapi.py                  # the version recorded in the file
    python scripts/vendor-github-openapi.py --version 23.0.2
    python scripts/vendor-github-openapi.py --tarball octokit-openapi-23.0.2.tgz

`npm pack` fetches the package from the npm registry and checks it against the registry's
integrity hash; the hash is recorded in the output next to the package name and version. A
new operation used by reviewflow's GitHub client is added to OPERATIONS, then this is re-run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "@octokit/openapi"
MEMBER = "package/generated/api.github.com.json"
OUT = Path(__file__).resolve().parents[1] / "tests" / "github" / "github-openapi.json"
OPERATIONS: list[tuple[str, str]] = [
    # github check (src/reviewflow/github_checks.py)
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations"),
    # github comment (src/reviewflow/github.py)
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    # GitHub App authentication (src/reviewflow/github_app.py)
    ("get", "/repos/{owner}/{repo}/installation"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
]
KEPT = ("operationId", "summary", "parameters", "requestBody")
DROPPED = frozenset({"examples", "example", "x-github", "x-octokit", "externalDocs"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", help="package version (default: the one vendored now)")
    parser.add_argument("--tarball", type=Path, help="an already downloaded package .tgz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.tarball is not None:
            tarball = args.tarball
            data = tarball.read_bytes()
            integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
            version = None
        else:
            version = args.version or json.loads(OUT.read_text("utf-8"))["source"]["version"]
            tarball, integrity = npm_pack(version, Path(tmp))
        spec = read_member(tarball)
    found = spec["info"]["version"]
    if version is not None and found != version:
        sys.exit(f"{tarball}: holds {PACKAGE} {found}, not {version}")
    doc = extract(spec)
    doc["source"] = {
        "package": PACKAGE,
        "version": found,
        "file": MEMBER.removeprefix("package/"),
        "integrity": integrity,
        "extracted_by": "scripts/vendor-github-openapi.py",
    }
    doc = {"source": doc.pop("source"), **doc}
    args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(OPERATIONS)} operations of {PACKAGE} {found} ({integrity})")
    return 0


def npm_pack(version: str, where: Path) -> tuple[Path, str]:
    """The package's tarball from the registry (npm checks its integrity) and that hash."""
    done = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{version}", "--json", "--pack-destination", str(where)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"npm pack {PACKAGE}@{version} failed: {done.stderr.strip()[-500:]}")
    [info] = json.loads(done.stdout)
    return where / info["filename"], info["integrity"]


def read_member(tarball: Path) -> dict[str, Any]:
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            sys.exit(f"{tarball}: no {MEMBER}")
        return json.load(member)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The listed operations and every component they reference, transitively."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        operation = spec["paths"][path][method]
        paths.setdefault(path, {})[method] = prune(
            {k: operation[k] for k in KEPT if k in operation}
        )
    components: dict[str, dict[str, Any]] = {}
    todo = list(refs(paths))
    while todo:
        ref = todo.pop()
        _, _, kind, name = ref.split("/", 3)
        if name in components.get(kind, {}):
            continue
        target = prune(spec["components"][kind][name])
        components.setdefault(kind, {})[name] = target
        todo.extend(refs(target))
    for kind in components:
        components[kind] = dict(sorted(components[kind].items()))
    return {"openapi": spec["openapi"], "paths": paths, "components": components}


def prune(node: Any) -> Any:
    """Without examples, vendor extensions and prose (a string `description`; a property of
    that name is a dict and stays)."""
    if isinstance(node, dict):
        return {
            k: prune(v)
            for k, v in node.items()
            if k not in DROPPED and not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [prune(v) for v in node]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


if __name__ == "__main__":
    raise SystemExit(main())
