"""Plugins from a folder named in the config (`plugins: [plugins/]`).

Each `*.py` file (or package folder) in such a folder is imported once and may provide

    TASK_TYPES = [MyTaskType()]          # new task types (objects or classes)
    CHECKS = {"licence": licence_check}  # new review checks

or a `register(task_types, checks)` function receiving the two registries. A plugin that fails
to import or register is reported by name and the others still load: a broken plugin breaks
only the tasks that use it, with a message that names it.

This module is the loader only: it imports no registry. The task-type registry
(executors.registry) and the check registry (review.checks.registry) provide themselves when
they are imported; what a plugin gives a registry not imported yet is kept and applied then.
Workflow files' plugins are loaded by config before the workflow is validated (never by a
validator): `config.validate_spec`, `config.stored_spec`.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import SpecError

_loaded: dict[Path, str | None] = {}
"""Plugin file → None if it loaded, else why it did not (each file is imported once)."""


def plugin_errors() -> dict[str, str]:
    """Plugins that failed to load, by file name: for error messages."""
    return {path.name: why for path, why in _loaded.items() if why}


def load_plugin_folders(folders: Iterable[str | Path], *, strict: bool = False) -> dict[str, str]:
    """Import every plugin in `folders`; returns {plugin: error} for those that failed.

    A missing folder is a SpecError with `strict` (a typo in the config), else reported.
    """
    failures: dict[str, str] = {}
    for folder in folders:
        base = Path(folder)
        if not base.is_dir():
            if strict:
                raise SpecError(f"plugin folder {str(base)!r} does not exist", field="plugins")
            failures[str(base)] = "no such folder"
            continue
        for entry in sorted(base.iterdir()):
            if entry.name.startswith(("_", ".")):
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file():
                target = entry / "__init__.py"
            elif entry.suffix == ".py" and entry.is_file():
                target = entry
            else:
                continue
            why = _load(target.resolve(), entry.stem)
            if why:
                failures[entry.name] = why
    return failures


def _load(path: Path, name: str) -> str | None:
    if path in _loaded:
        return _loaded[path]
    import hashlib  # not at import time: the engine's start-up imports this module

    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    module_name = f"reviewflow_plugin_{name}_{digest}"
    try:
        spec = importlib.util.spec_from_file_location(
            module_name,
            path,
            submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None,
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        _register(module)
    except (Exception, SystemExit) as exc:  # one plugin's failure leaves the others working
        sys.modules.pop(module_name, None)
        why = f"{type(exc).__name__}: {exc}"
        _loaded[path] = why
        return why
    _loaded[path] = None
    return None


class _Pending:
    """Stands for a registry not imported yet: records `register(...)` calls and replays them
    into the real one when it is provided (`provide`)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def register(self, *args: Any) -> None:
        self.calls.append(args)


_registries: dict[str, Any] = {}
"""The registries plugins add to, by kind ("task_types", "checks"): each registry's module
provides itself when imported (`provide`), so this loader imports none of them."""
_pending: dict[str, _Pending] = {}
"""What loaded plugins gave a registry that was not provided yet, by kind."""


def provide(kind: str, registry: Any) -> None:
    """Make `registry` the one plugins add `kind` to; applies what loaded plugins gave it."""
    _registries[kind] = registry
    pending = _pending.pop(kind, None)
    for args in pending.calls if pending else ():
        registry.register(*args)


def _target(kind: str) -> Any:
    registry = _registries.get(kind)
    if registry is None:
        registry = _pending.setdefault(kind, _Pending())
    return registry


def _register(module: Any) -> None:
    task_types, checks = _target("task_types"), _target("checks")
    for task_type in getattr(module, "TASK_TYPES", ()):
        task_types.register(task_type() if isinstance(task_type, type) else task_type)
    for name, check in dict(getattr(module, "CHECKS", {})).items():
        checks.register(name, check)
    register = getattr(module, "register", None)
    if callable(register):
        register(task_types, checks)
