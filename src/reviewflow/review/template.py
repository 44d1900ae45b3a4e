"""Review templates: which checks a review runs, when, in what order, and its quality gates.

Templates are YAML files shipped in `reviewflow/review/templates/` (`pr`, `security`,
`content`) or a user's own file. A template may `extends:` another (a shipped name or a path
relative to itself): checks are merged key by key, options too, so a user template can change
one threshold without restating the rest.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import interpolate
from ..errors import SpecError
from ..notify.targets import NotificationTarget
from ..spec import Duration, Name, spec_error_from
from ..yamlsafe import parse_yaml
from .cache import CacheConfig

RESERVED_NAMES = frozenset({"change", "verdict", "approval", "summary"})
When = Literal["always", "sensitive", "public_api", "dependencies", "performance", "never"]
MAX_EXTENDS = 10


class CheckConfig(BaseModel):
    """One check of a template. `uses` names the implementation (default: the check's key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uses: str | None = None
    when: When = "always"
    needs: list[str] = Field(default_factory=list)
    timeout: Duration = 600.0
    retries: int = Field(1, ge=0, le=10)
    """Checks only read the tree, so re-running is safe: one retry covers a crashed tool and a
    process killed mid-review (`resume` re-runs the lost attempt)."""
    priority: str | int = "medium"
    options: dict[str, Any] = Field(default_factory=dict)


class Gates(BaseModel):
    """Quality gates: a review whose findings break one gets `request_changes`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_errors: int | None = Field(0, ge=0)
    max_warnings: int | None = Field(None, ge=0)
    min_changed_line_coverage: float | None = Field(None, ge=0, le=100)
    fail_on_check_error: bool = True
    """A check that broke (not skipped: crashed) means the change was not fully checked."""
    require_all_checks: bool = False
    """A check that could not run (tool missing, service unreachable) breaks the gate too."""


class ApprovalConfig(BaseModel):
    """A person's approval after the checks (content reviews)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: Duration | None = None
    on_timeout: Literal["reject", "approve", "escalate"] = "reject"
    escalate_to: str | None = None
    approvers: list[str] = Field(default_factory=list)
    prompt: str | None = None
    paths: list[str] = Field(default_factory=list)
    """Ask only when a changed file matches one of these globs (empty: always ask)."""


class ReviewTemplate(BaseModel):
    """A validated template (after `extends` is resolved)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    description: str = ""
    extends: str | None = None
    max_concurrency: int | None = Field(None, ge=1)
    timeout: Duration | None = None
    checks: dict[str, CheckConfig]
    gates: Gates = Gates()
    approval: ApprovalConfig | None = None
    sensitive_paths: list[str] = Field(default_factory=list)
    dependency_files: list[str] = Field(default_factory=list)
    cache: CacheConfig = CacheConfig()
    """Reuse of check results whose inputs did not change (`.reviewflow/cache`)."""
    plugins: list[str] = Field(default_factory=list)
    """Folders of plugin modules (relative to the template file) providing checks/task types."""
    notifications: list[NotificationTarget] = Field(default_factory=list)
    """Who hears about the review's run (as a workflow's `notifications:`)."""
    source: str | None = None
    """Where the template came from (a shipped name or a file path)."""

    @field_validator("checks")
    @classmethod
    def _needs_known(cls, checks: dict[str, CheckConfig]) -> dict[str, CheckConfig]:
        from graphlib import CycleError, TopologicalSorter

        for name, check in checks.items():
            if name in RESERVED_NAMES:
                raise ValueError(f"check name {name!r} is reserved (a task of every review)")
            for dep in check.needs:
                if dep not in checks:
                    raise ValueError(f"check {name!r} needs unknown check {dep!r}")
        try:
            TopologicalSorter({n: c.needs for n, c in checks.items()}).prepare()
        except CycleError as exc:
            raise ValueError("cycle in needs: " + " -> ".join(reversed(exc.args[1]))) from None
        return checks


def shipped() -> dict[str, Path]:
    """The templates that come with reviewflow, by name."""
    folder = resources.files("reviewflow.review") / "templates"
    return {
        Path(str(entry)).stem: Path(str(entry))
        for entry in folder.iterdir()
        if str(entry).endswith(".yaml")
    }


def _read(ref: str, relative_to: Path | None) -> tuple[dict[str, Any], Path, str]:
    """Raw data of a template named `ref` (shipped name, else a path)."""
    builtin = shipped()
    candidate = Path(ref)
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to / candidate
    if ref in builtin and not (candidate.suffix and candidate.exists()):
        path, label = builtin[ref], ref
    else:
        path, label = candidate, str(candidate)
        if not path.is_file():
            names = ", ".join(sorted(builtin))
            raise SpecError(
                f"no template {ref!r} (shipped: {names}; or give a YAML file path)", file=str(ref)
            )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", file=label) from None
    data = parse_yaml(text, file=label)
    if not isinstance(data, dict):
        raise SpecError("a template must be a mapping", file=label)
    return data, path, label


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`; checks, gates, approval and options merge key by key."""
    out = dict(base)
    for key, value in over.items():
        if key == "checks" and isinstance(value, dict) and isinstance(base.get(key), dict):
            checks = dict(base[key])
            for name, body in value.items():
                old = checks.get(name)
                if isinstance(old, dict) and isinstance(body, dict):
                    merged = {**old, **body}
                    if isinstance(old.get("options"), dict) and isinstance(
                        body.get("options"), dict
                    ):
                        merged["options"] = {**old["options"], **body["options"]}
                    checks[name] = merged
                else:
                    checks[name] = body
            out[key] = checks
        elif (
            key in ("gates", "approval", "cache")
            and isinstance(value, dict)
            and isinstance(base.get(key), dict)
        ):
            out[key] = {**base[key], **value}
        else:
            out[key] = value
    return out


PROJECT_TABLE = "tool.reviewflow.review"
PROJECT_KEYS = frozenset(
    {
        "cache",
        "checks",
        "gates",
        "sensitive_paths",
        "dependency_files",
        "max_concurrency",
        "timeout",
    }
)


def project_settings(root: Path) -> dict[str, Any]:
    """The repository's own review settings: `[tool.reviewflow.review]` of its pyproject.toml.

    Where pytest, ruff and coverage read theirs: a project says once how it is reviewed (its
    fast test subset, a stricter gate) and every review of it, local or in CI, applies that.
    """
    import tomllib

    path = root / "pyproject.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}", file=str(path)) from None
    table: Any = data
    for key in PROJECT_TABLE.split("."):
        table = table.get(key) if isinstance(table, dict) else None
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise SpecError("must be a table", file=str(path), field=PROJECT_TABLE)
    for key, value in table.items():
        if key not in PROJECT_KEYS:
            known = ", ".join(sorted(PROJECT_KEYS))
            raise SpecError(
                f"unknown key {key!r} (known: {known})",
                file=str(path),
                field=f"{PROJECT_TABLE}.{key}",
            )
        if key == "checks" and not (
            isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        ):
            raise SpecError(
                "must be a table of check tables", file=str(path), field=f"{PROJECT_TABLE}.checks"
            )
    return table


def load_template(
    ref: str, *, env: dict[str, str] | None = None, project: Path | None = None
) -> ReviewTemplate:
    """The template named `ref` (shipped) or at path `ref`, with `extends` resolved.

    With `project` (a repository's root), its `[tool.reviewflow.review]` settings apply on
    top; settings for a check the template does not have are left out (the `content`
    template has no `tests` to configure).
    """
    import os

    data, path, label = _read(ref, None)
    chain = [label]
    layers = [(data, path)]
    while isinstance(data.get("extends"), str):
        if len(chain) > MAX_EXTENDS:
            raise SpecError("extends: too deep (a loop?): " + " -> ".join(chain), file=label)
        try:
            data, path, parent = _read(data["extends"], path.parent)
        except SpecError as exc:
            raise SpecError(exc.message, file=chain[-1], field="extends") from None
        if parent in chain:
            raise SpecError("extends loop: " + " -> ".join([*chain, parent]), file=label)
        chain.append(parent)
        layers.append((data, path))
    merged: dict[str, Any] = {}
    for layer, layer_path in reversed(layers):
        layer = dict(layer)
        if isinstance(layer.get("plugins"), list):
            layer["plugins"] = [
                str((layer_path.parent / p).resolve()) if isinstance(p, str) else p
                for p in layer["plugins"]
            ]
            layer["plugins"] = [*merged.get("plugins", []), *layer["plugins"]]
        merged = _merge(merged, layer)
    merged["extends"] = data.get("extends") if len(layers) == 1 else layers[0][0].get("extends")
    merged["source"] = label
    if project is not None:
        settings = dict(project_settings(project))
        if "checks" in settings:
            settings["checks"] = {
                name: body
                for name, body in settings["checks"].items()
                if name in merged.get("checks", {})
            }
        if settings:
            merged = _merge(merged, settings)
            label = f"{label} + {project / 'pyproject.toml'} [{PROJECT_TABLE}]"
            merged["source"] = label
    merged = interpolate(merged, os.environ if env is None else env)
    try:
        return ReviewTemplate.model_validate(merged)
    except ValidationError as exc:
        err = spec_error_from(exc, file=label)
        loc = exc.errors(include_url=False)[0]["loc"]
        field = ".".join(str(p) for p in loc) or None
        raise SpecError(err.message, file=label, field=field) from None


def template_text(ref: str) -> str:
    """The YAML text of a template as written (for `reviewflow templates show`)."""
    _, path, _ = _read(ref, None)
    return path.read_text(encoding="utf-8")
