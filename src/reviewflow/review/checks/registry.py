"""The registry of checks: built-ins, entry points of group `reviewflow.checks`, plugin folders.

Built-ins are named by import path and imported on first use, so a review that never runs the
content checks never imports textstat. A plugin package declares:

    [project.entry-points."reviewflow.checks"]
    licence = "mypkg.checks:licence_header"

A plugin that fails to load is reported by name (`plugin_errors`) and does not hide the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...errors import CheckNotFound as CheckNotFound
from ...plugins import plugin_errors as folder_errors
from ...plugins import provide
from .base import CheckFunction

ENTRY_POINT_GROUP = "reviewflow.checks"

BUILTIN: dict[str, str] = {
    "syntax": "reviewflow.review.checks.code:syntax",
    "lint": "reviewflow.review.checks.code:lint",
    "format": "reviewflow.review.checks.code:format_check",
    "security": "reviewflow.review.checks.code:security",
    "secrets": "reviewflow.review.checks.code:secrets",
    "tests": "reviewflow.review.checks.tests:tests",
    "docs": "reviewflow.review.checks.api:docs",
    "dependencies": "reviewflow.review.checks.deps:dependencies",
    "performance": "reviewflow.review.checks.perf:performance",
    "metadata": "reviewflow.review.checks.content:metadata",
    "headings": "reviewflow.review.checks.content:headings",
    "readability": "reviewflow.review.checks.content:readability",
    "spelling": "reviewflow.review.checks.content:spelling",
    "links": "reviewflow.review.checks.content:links",
    "length": "reviewflow.review.checks.content:length",
    "grammar": "reviewflow.review.checks.prose:grammar",
    "style": "reviewflow.review.checks.prose:style",
}


def _resolve(target: str) -> CheckFunction:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    check: CheckFunction = obj  # what the registry's targets name
    return check


class CheckRegistry:
    """Maps a check name to the function that runs it."""

    def __init__(self, builtin: dict[str, str]) -> None:
        self._targets: dict[str, str | CheckFunction] = dict(builtin)
        self._loaded = False
        self.plugin_errors: dict[str, str] = {}

    def register(self, name: str, check: CheckFunction | str) -> None:
        """Add or replace a check (a function, or an import path `module:function`)."""
        self._targets[name] = check

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._targets)

    def get(self, name: str) -> CheckFunction:
        """The check called `name`; CheckNotFound names what is known instead."""
        target = self._target(name)
        if isinstance(target, str):
            target = _resolve(target)
            self._targets[name] = target
        return target

    def require(self, name: str) -> None:
        """CheckNotFound (as `get` raises it) unless a check called `name` exists. A built-in
        check is not imported for that: `reviewflow review` checks its template's names before
        the run exists, and the checks' modules import their tools (docs/benchmarks.md)."""
        target = self._target(name)
        if isinstance(target, str) and BUILTIN.get(name) != target:
            self.get(name)  # a plugin's import path: it must resolve, as before

    def _target(self, name: str) -> str | CheckFunction:
        if name not in self._targets:
            self._load_entry_points()
        target = self._targets.get(name)
        if target is None:
            known = ", ".join(sorted(self._targets))
            errors = {**self.plugin_errors, **folder_errors()}
            broken = "".join(
                f"; plugin {k!r} failed to load: {v}" for k, v in sorted(errors.items())
            )
            raise CheckNotFound(f"unknown check {name!r} (known: {known}{broken})")
        return target

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from importlib.metadata import entry_points  # scans every installed distribution

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._targets:
                continue
            try:
                self._targets[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not hide the others
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"


checks = CheckRegistry(BUILTIN)
provide("checks", checks)
