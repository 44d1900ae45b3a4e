"""POST /runs bodies: a workflow as YAML or JSON, or a review template with its parameters.

- `application/yaml` (also `application/x-yaml`, `text/yaml`, `text/x-yaml`): a workflow file's
  text, read as `reviewflow run FILE` reads it.
- `application/json`: a workflow mapping (the same fields as YAML), or
  `{"template": NAME, "params": {...}}`: a review run of a repository checkout (review_run).

`${VAR}` in a workflow is interpolated with an *empty* environment (only `${VAR:-default}`
works): the server's environment, with its secrets, is not the client's to read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import interpolate, load_workflow_text, validate_spec
from ..errors import SpecError
from ..spec import WorkflowSpec
from ..yamlsafe import TaskLines, _gc_paused
from .context import ServerContext
from .http import ApiError, spec_error
from .review_run import BadParam, clone_url, repo_from_url, review_spec
from .schemas import TemplateRun

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json"})
BODY_FILE = "<request body>"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def workflow_media(content_type: str | None) -> str:
    """The media type of a workflow body: YAML or JSON, else 415."""
    kind = media_type(content_type)
    if kind not in YAML_TYPES and kind not in JSON_TYPES:
        raise ApiError(
            415,
            f"unsupported Content-Type {kind or '(none)'!r}: use "
            "application/yaml or application/json",
            "Content-Type",
        )
    return kind


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"the body is not UTF-8: {exc}", "body") from None


def from_yaml(body: bytes) -> WorkflowSpec:
    """The workflow of a YAML body, parsed once (the loader refuses what UTF-8 cannot hold);
    an error about a task names its section and line from that one parse."""
    text = _text(body)
    lines: TaskLines = {}
    try:
        return load_workflow_text(text, file=BODY_FILE, env={}, task_lines=lines)
    except SpecError as exc:
        data = None
        if exc.task in lines:
            data = {lines[exc.task][0]: {exc.task: None}}  # tells tasks from on_failure
        raise spec_error(exc, data) from None


def plain_json(body: bytes) -> bool:
    """A JSON body without backslashes or `$`: no escape can spell a surrogate or a `${VAR}`,
    so neither check needs to walk the parsed data."""
    return b"\\" not in body and b"$" not in body


def from_mapping(data: dict[str, Any], *, plain: bool = False) -> WorkflowSpec:
    """A workflow given as JSON: the same steps as a YAML file (interpolation, plugins).
    `plain` (see `plain_json`): there is nothing to interpolate."""
    try:
        with _gc_paused():  # as for YAML: nothing built here is garbage until it ends
            if not plain:
                data = interpolate(data, {})
            plugins = data.get("plugins")
            if isinstance(plugins, list):
                data["plugins"] = [
                    str((Path.cwd() / p).resolve()) if isinstance(p, str) else p for p in plugins
                ]
            return validate_spec(data, file=BODY_FILE)
    except SpecError as exc:
        raise spec_error(exc, data) from None
    except RecursionError:
        raise ApiError(422, "the workflow is nested too deeply", "body") from None


def _utf8_only(data: Any, what: str) -> None:
    """422 for text UTF-8 cannot hold: an escaped unpaired surrogate (`"\\ud800"` in JSON or
    double-quoted YAML) decodes to a string no database, log or argv can store."""
    try:
        json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            422, f"invalid {what}: an escaped unpaired surrogate (\\uD800-\\uDFFF)", "body"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, f"invalid {what}: {exc}", "body") from None


def parse_json(body: bytes) -> Any:
    """The JSON body, or 422 naming `body`."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, f"invalid JSON: {exc}", "body") from None
    if not plain_json(body):
        _utf8_only(data, "JSON")
    return data


def from_template(
    ctx: ServerContext, data: dict[str, Any], run_id: str
) -> tuple[WorkflowSpec, dict[str, str]]:
    """The review run a template request asks for, and its metadata."""
    from ..review.template import shipped

    try:
        req = TemplateRun.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, f"body field {field}: {first['msg']}", field) from None
    names = sorted(shipped())
    if req.template not in names:
        raise ApiError(
            422, f"no template {req.template!r} (shipped: {', '.join(names)})", "template"
        )
    p = req.params
    try:
        url = clone_url(p.repo_url, "params.repo_url")
        base_url = clone_url(p.base_url, "params.base_url") if p.base_url else None
    except BadParam as exc:
        raise ApiError(422, f"{exc.field}: {exc}", exc.field) from None
    repo = p.repo or repo_from_url(url)
    spec = review_spec(
        template=req.template,
        repo_url=url,
        sha=p.sha.lower(),
        base=p.base.lower(),
        base_url=base_url,
        run_id=run_id,
        work_dir=ctx.work_dir,
        reviewflow=ctx.reviewflow_cmd,
        post_back=ctx.post_back(repo, p.pr, run_id) if _github_repo(repo) else None,
    )
    meta = {
        "template": req.template,
        "repo": repo,
        "sha": p.sha.lower(),
        "base": p.base.lower(),
    }
    if p.pr is not None:
        meta["pr"] = str(p.pr)
    return spec, meta


def parse_meta(items: list[str]) -> dict[str, str]:
    """`meta=key=value` query parameters (repeatable)."""
    meta: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ApiError(422, f"bad meta {item!r}: use key=value", "meta")
        meta[key.strip()] = value
    return meta


def _github_repo(repo: str) -> bool:
    """Whether `repo` names a GitHub repository (owner/name) a result can be posted to."""
    from ..github import REPO_RE

    return bool(REPO_RE.match(repo))
