"""Plugins from a folder named in the config (`plugins: [plugins/]`).

Each `*.py` file (or package folder) in such a folder is imported once and may provide

    TASK_TYPES = [MyTaskType()]          # new task types (objects or classes)
    CHECKS = {"licence": licence_check}  # new review checks

or a `register(task_types, checks)` function receiving the two registries. A plugin that fails
to import or register is reported by name and the others still load: a broken plugin breaks
only the tasks that use it, with a message that names it.
"""

from __future__ import annotations

import hashlib
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


def _register(module: Any) -> None:
    from .executors.registry import registry
    from .review.checks.registry import checks

    for task_type in getattr(module, "TASK_TYPES", ()):
        registry.register(task_type() if isinstance(task_type, type) else task_type)
    for name, check in dict(getattr(module, "CHECKS", {})).items():
        checks.register(name, check)
    register = getattr(module, "register", None)
    if callable(register):
        register(registry, checks)
