"""Check a request against GitHub's official OpenAPI description (github-openapi.json, the
operations reviewflow uses, vendored from the `@octokit/openapi` npm package by
scripts/vendor-github-openapi.py).

A request is checked the way GitHub reads it: the operation (method and path template) must
exist, path and query parameters must have their declared types and values, and the JSON body
must match the operation's request schema (jsonschema). One rule is stricter than GitHub: an
object that lists its properties refuses any other (GitHub ignores an unknown field, which is how
a misspelt `anotations` would go unnoticed); a schema that says `additionalProperties` keeps it.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_FILE = Path(__file__).with_name("github-openapi.json")
SPEC_URI = "urn:github-openapi"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 as GitHub documents it (`YYYY-MM-DDTHH:MM:SSZ`); jsonschema needs an extra
    package to check this format and would otherwise let anything through."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]
    path_params: dict[str, dict[str, Any]]
    query_params: dict[str, tuple[dict[str, Any], bool]]
    body: jsonschema.protocols.Validator | None
    body_required: bool


class OpenAPI:
    """The vendored operations, ready to check requests; `source` names the package version."""

    def __init__(self, path: Path = SPEC_FILE) -> None:
        doc = _strict(json.loads(path.read_text(encoding="utf-8")))
        self.source: dict[str, str] = doc["source"]
        registry: Registry = Registry().with_resource(
            SPEC_URI, Resource.from_contents(doc, default_specification=DRAFT4)
        )
        self.operations: list[Operation] = []
        for template, methods in doc["paths"].items():
            for method, op in methods.items():
                params = [_resolve(doc, p) for p in op.get("parameters", [])]
                body = op.get("requestBody")
                validator = None
                if body is not None:
                    pointer = "/".join(
                        _escape(k) for k in ("paths", template, method, "requestBody", "content")
                    )
                    ref = {"$ref": f"{SPEC_URI}#/{pointer}/application~1json/schema"}
                    validator = jsonschema.Draft4Validator(
                        ref, registry=registry, format_checker=FORMATS
                    )
                self.operations.append(
                    Operation(
                        method=method.upper(),
                        template=template,
                        operation_id=op["operationId"],
                        pattern=_pattern(template),
                        path_params={p["name"]: p["schema"] for p in params if p["in"] == "path"},
                        query_params={
                            p["name"]: (p["schema"], bool(p.get("required")))
                            for p in params
                            if p["in"] == "query"
                        },
                        body=validator,
                        body_required=bool(body and body.get("required")),
                    )
                )

    def problems(self, method: str, target: str, body: Any, has_body: bool) -> list[str]:
        """What is wrong with the request (empty when it is valid), each naming the operation
        and the field."""
        url = urllib.parse.urlsplit(target)
        path = url.path
        found = [(op, m) for op in self.operations if (m := op.pattern.fullmatch(path))]
        if not found:
            return [f"{method} {path}: no such path in GitHub's OpenAPI description"]
        matched = [(op, m) for op, m in found if op.method == method]
        if not matched:
            return [f"{method} {found[0][0].template}: no such method in the description"]
        op, match = matched[0]
        where = f"{op.operation_id} ({method} {op.template})"
        out: list[str] = []
        for name, raw in match.groupdict().items():
            out += _param(where, f"path parameter {name}", op.path_params[name], raw)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        for name, values in query.items():
            if name not in op.query_params:
                out.append(f"{where}: unknown query parameter {name!r}")
            elif len(values) > 1:
                out.append(f"{where}: query parameter {name!r} given {len(values)} times")
            else:
                out += _param(where, f"query parameter {name}", op.query_params[name][0], values[0])
        for name, (_, required) in op.query_params.items():
            if required and name not in query:
                out.append(f"{where}: missing required query parameter {name!r}")
        if op.body is None:
            if has_body:
                out.append(f"{where}: takes no request body")
        elif not has_body:
            if op.body_required:
                out.append(f"{where}: the request body is required")
        else:
            for error in sorted(op.body.iter_errors(body), key=lambda e: list(e.absolute_path)):
                field = "/".join(str(p) for p in error.absolute_path) or "(body)"
                message = error.message if len(error.message) <= 300 else error.message[:300] + "…"
                out.append(f"{where}: body {field}: {message}")
        return out


@cache
def github_openapi() -> OpenAPI:
    """Loaded once per test session (the checks are read-only)."""
    return OpenAPI()


def _param(where: str, what: str, schema: dict[str, Any], raw: str) -> list[str]:
    value: Any = urllib.parse.unquote(raw)
    kind = schema.get("type")
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return [f"{where}: {what} {value!r} is not an integer"]
        value = int(value)
    elif kind == "boolean":
        if value not in ("true", "false"):
            return [f"{where}: {what} {value!r} is not true or false"]
        value = value == "true"
    validator = jsonschema.Draft4Validator(schema, format_checker=FORMATS)
    return [f"{where}: {what}: {e.message}" for e in validator.iter_errors(value)]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(regex)


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for key in node["$ref"].removeprefix("#/").split("/"):
            target = target[key.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _strict(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy in which an object schema that lists properties and says nothing about others
    refuses them."""
    doc = copy.deepcopy(doc)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc["paths"])
    return doc
