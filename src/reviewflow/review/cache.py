"""Reuse of check results between reviews of one repository: `.reviewflow/cache`.

A check whose inputs did not change since an earlier review of the same repository gets that
review's result back instead of running again. Its inputs are hashed into the entry's key:

- the check: its name in the template, its implementation, its options, and the results of
  the checks it runs after (`lint` sees `syntax`);
- the tools: Python's version, every installed distribution (name and version, as its
  dist-info folder is named) and reviewflow's own review code;
- what the check reads, by its scope in `POLICIES`:
  `files`  the changed files (path, status, content);
  `tree`   every file of the work tree git does not ignore, and the change itself (base,
           files, changed lines): the tests read whatever the suite imports, a conftest, data.
  Some checks add `config` (the tools' configuration files anywhere in the tree:
  pyproject.toml, ruff.toml, setup.cfg, .gitignore, ...), `paths` (the list of the tree's file
  names: ruff tells first-party imports by them) or `env` (the environment variables: a test
  suite reads them).
- A check not in `POLICIES` is never reused: a plugin (anything may be an input), the
  dependency audit (a vulnerability database changes every day), performance (timings).

Checks of scope `files` also keep each file's findings on its own (`FileCache`, used through
`CheckContext.each_file`): a push that changes one file of ten re-lints that file only.

Entries are JSON files `<key[:2]>/<key>.json`, written to a temporary file and renamed, so a
reader sees a whole entry or none; one that does not parse or does not hold its own key is
ignored and removed. A hit refreshes the entry's mtime; `evict` removes the least recently
used entries past the size and count limits. The folder may be deleted at any time. Each
repository has its own (under its root), and the root's path is part of every key.
Results of a check that could not run (a tool or service missing) or broke are not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..statedir import STATE_DIR, make_dirs
from .change import Change, git
from .findings import CheckResult, Finding

FORMAT = 1
"""Bumped when an entry's shape or a key's inputs change: older entries are never read."""
CACHE_FOLDER = "cache"
CONFIG_FILES = frozenset(
    {
        "pyproject.toml",
        "ruff.toml",
        ".ruff.toml",
        "setup.cfg",
        "tox.ini",
        ".bandit",
        ".gitignore",
        ".gitattributes",
        ".flake8",
        "words.txt",
    }
)
"""Files (by name, in any folder) a tool of a `files` check may read its settings from."""
VOLATILE_ENV = frozenset({"_", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "TERM", "WINDOWID"})
"""Environment variables a shell changes on its own; they decide nothing a check finds."""

Scope = Literal["files", "tree"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What a check reads, hence what its cache key holds (see the module docstring)."""

    scope: Scope
    extra: frozenset[str] = frozenset()
    per_file: bool = False
    """Its findings of one file depend on that file alone (and the key's other inputs)."""


POLICIES: dict[str, Policy] = {
    "syntax": Policy("files", per_file=True),
    "lint": Policy("files", frozenset({"config", "paths"}), per_file=True),
    "format": Policy("files", frozenset({"config"}), per_file=True),
    "security": Policy("files", frozenset({"config"}), per_file=True),
    "secrets": Policy("files", per_file=True),
    "tests": Policy("tree", frozenset({"env"})),
    "docs": Policy("tree"),
    "metadata": Policy("tree"),
    "headings": Policy("tree"),
    "readability": Policy("tree"),
    "spelling": Policy("tree"),
    "links": Policy("tree"),
    "length": Policy("tree"),
    "grammar": Policy("tree"),
    "style": Policy("tree"),
}
"""Checks whose results may be reused, by implementation name; any other is always run."""


class CacheConfig(BaseModel):
    """`cache:` of a template (or `[tool.reviewflow.review.cache]`): how much to keep."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    max_mb: float = Field(200.0, gt=0)
    """Size of the folder past which the least recently used entries are removed."""
    max_entries: int = Field(20_000, ge=1)


def cache_folder(root: str | Path) -> Path:
    """The cache of the repository whose work tree is at `root`."""
    return Path(root) / STATE_DIR / CACHE_FOLDER


def digest(value: Any) -> str:
    """sha256 of a JSON value in canonical form (sorted keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def blob_id(data: bytes) -> str:
    """git's blob id of `data`: a file committed and the same file uncommitted hash alike."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(slots=True)
class TreeState:
    """The work tree's files git does not ignore, each with its content's blob id."""

    blobs: dict[str, str] = field(default_factory=dict)

    def digest(self, paths: Iterable[str] | None = None) -> str:
        chosen = self.blobs if paths is None else {p: self.blobs.get(p, "-") for p in paths}
        return digest(sorted(chosen.items()))

    def config_digest(self) -> str:
        return self.digest(p for p in self.blobs if p.rsplit("/", 1)[-1] in CONFIG_FILES)

    def paths_digest(self) -> str:
        return digest(sorted(self.blobs))


def tree_state(root: Path, exclude: Sequence[str] = ()) -> TreeState:
    """What is in the work tree now: the index's blob ids, corrected by `git status` for every
    file that differs from it (modified, untracked, deleted). Two git calls."""
    skip = tuple(p.rstrip("/") for p in exclude)
    pathspec = ["--", ".", ":(exclude,glob)**/.reviewflow/**", *(f":(exclude){p}" for p in skip)]
    blobs: dict[str, str] = {}
    for record in git(root, "ls-files", "-s", "-z", *pathspec).stdout.split(b"\0"):
        meta, _, name = record.partition(b"\t")
        if name:
            mode, blob, _stage = meta.split(b" ")
            blobs[name.decode("utf-8", "backslashreplace")] = f"{mode.decode()}:{blob.decode()}"
    status = git(
        root,
        "status",
        "--porcelain",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        *pathspec,
    ).stdout
    for record in status.split(b"\0"):
        if len(record) < 4:
            continue
        rel = record[3:].decode("utf-8", "backslashreplace")
        path = root / rel
        try:
            if path.is_symlink():
                blobs[rel] = "link:" + blob_id(os.readlink(path).encode("utf-8", "replace"))
            elif path.is_file():
                executable = "100755" if os.access(path, os.X_OK) else "100644"
                blobs[rel] = f"{executable}:{blob_id(path.read_bytes())}"
            else:
                blobs.pop(rel, None)
        except OSError:
            blobs[rel] = "unreadable"
    return TreeState(blobs)


def tools_fingerprint() -> str:
    """Python's version, the installed distributions and reviewflow's review code.

    Listing the folders on `sys.path` costs well under a millisecond: a dist-info folder is
    named with its version, so an upgraded tool changes the fingerprint. reviewflow's own
    checks are hashed by size and mtime of their files (an editable install has no version
    to go by)."""
    h = hashlib.sha256(sys.version.encode())
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")):
                h.update(f"{entry}/{name}\n".encode())
    own = Path(__file__).resolve().parent
    for path in sorted(own.rglob("*")):
        if path.suffix in (".py", ".yaml"):
            with contextlib.suppress(OSError):
                st = path.stat()
                h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _env_digest() -> str:
    return digest(sorted((k, v) for k, v in os.environ.items() if k not in VOLATILE_ENV))


def _upstream_data(upstream: Mapping[str, CheckResult]) -> dict[str, Any]:
    """The upstream results as inputs: what they found, not whether they were reused."""
    return {
        name: r.model_dump(mode="json", exclude={"cached"}) for name, r in sorted(upstream.items())
    }


@dataclass(slots=True)
class CheckKey:
    """The inputs of one check of one review, and the keys derived from them."""

    base: dict[str, Any]
    """Inputs shared by the whole check and each of its files."""
    whole: dict[str, Any]
    """The inputs that only the whole check's result depends on (the change's files)."""
    policy: Policy
    state: TreeState
    upstream: Mapping[str, CheckResult]

    @property
    def key(self) -> str:
        return digest({"kind": "check", **self.base, **self.whole})

    def file_key(self, path: str) -> str:
        """The key of one file's findings: the file's path and content, the shared inputs, and
        what the upstream checks found in that file."""
        found = sorted(
            (name, f.model_dump_json())
            for name, r in self.upstream.items()
            for f in r.findings
            if f.file == path
        )
        statuses = sorted((name, r.status) for name, r in self.upstream.items())
        return digest(
            {
                "kind": "file",
                **self.base,
                "path": path,
                "blob": self.state.blobs.get(path, "-"),
                "upstream": found,
                "upstream_status": statuses,
            }
        )


def check_key(
    *,
    task: str,
    uses: str,
    options: Mapping[str, Any],
    change: Change,
    upstream: Mapping[str, CheckResult],
    state: TreeState,
    tools: str,
) -> CheckKey | None:
    """The inputs of check `task` (implementation `uses`); None when it is never reused."""
    policy = POLICIES.get(uses)
    if policy is None:
        return None
    base: dict[str, Any] = {
        "format": FORMAT,
        "root": change.root,
        "task": task,
        "uses": uses,
        "options": options,
        "tools": tools,
    }
    if policy.scope == "tree":
        base["tree"] = state.digest()
    if "config" in policy.extra:
        base["config"] = state.config_digest()
    if "paths" in policy.extra:
        base["paths"] = state.paths_digest()
    if "env" in policy.extra:
        base["env"] = _env_digest()
    if policy.scope == "files":
        # Code checks report everything in a changed file (narrowing to the changed lines is
        # the summary's job): the lines are not an input, the files and their contents are.
        whole: dict[str, Any] = {
            "files": [
                (f.path, f.status, f.old_path, f.binary, state.blobs.get(f.path, "-"))
                for f in change.files
            ],
        }
    else:
        whole = {"change": change.model_dump(mode="json", exclude={"head", "dirty", "base_ref"})}
    whole["upstream"] = _upstream_data(upstream)
    return CheckKey(base, whole, policy, state, upstream)


class ReviewCache:
    """One repository's cache folder: get, put, evict. Every failure is a miss."""

    def __init__(self, folder: Path, config: CacheConfig | None = None) -> None:
        self.folder = folder
        self.config = config or CacheConfig()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under `key`, or None (missing, partial, corrupt, other format)."""
        path = self._path(key)
        try:
            entry = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            entry = None
        if not (
            isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("key") == key
        ):
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return entry

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store `value` under `key`: whole or not at all (temporary file, then rename)."""
        path = self._path(key)
        data = json.dumps({**value, "format": FORMAT, "key": key, "stored_at": time.time()})
        try:
            make_dirs(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            pass  # a cache that cannot be written is a cache that misses

    def entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry and leftover temporary file."""
        out: list[tuple[float, int, Path]] = []
        try:
            shards = list(os.scandir(self.folder))
        except OSError:
            return out
        for shard in shards:
            # Entries live in two-hex-digit shards; other folders (the tests check's
            # coverage map in testmap/) are not this cache's to evict.
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            try:
                files = list(os.scandir(shard.path))
            except OSError:
                continue
            for entry in files:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def evict(self) -> int:
        """Remove the least recently used entries until the folder is within its limits (to
        90% of them, so the next review does not evict again at once). Returns how many."""
        entries = sorted(self.entries())
        size = sum(s for _, s, _ in entries)
        limit_bytes = self.config.max_mb * 1024 * 1024
        limit_count = self.config.max_entries
        if size <= limit_bytes and len(entries) <= limit_count:
            return 0
        removed = 0
        count = len(entries)
        for _, entry_size, path in entries:
            if size <= limit_bytes * 0.9 and count <= limit_count * 0.9:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
            size -= entry_size
            count -= 1
        return removed


class FileCache:
    """Findings of one check per file, so an unchanged file is not checked again."""

    def __init__(self, store: ReviewCache, key: CheckKey) -> None:
        self.store = store
        self.key = key
        self.reused: list[str] = []
        self.checked: list[str] = []

    def lookup(self, files: Sequence[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """(what was found in each file with a stored entry, the files without one)."""
        found: dict[str, dict[str, Any]] = {}
        todo: list[str] = []
        for path in files:
            entry = self.store.get(self.key.file_key(path))
            if entry is None or not isinstance(entry.get("findings"), list):
                todo.append(path)
            else:
                found[path] = entry
        return found, todo

    def store_files(
        self, files: Sequence[str], findings: Sequence[Finding], data: Mapping[str, Any]
    ) -> None:
        """Store each file's findings (and its `data`), unless a finding names a file outside
        `files` or none: then what belongs to a file is not known, so nothing is stored."""
        wanted = set(files)
        by_file: dict[str, list[dict[str, Any]]] = {p: [] for p in files}
        for f in findings:
            if f.file not in wanted:
                return
            by_file[f.file].append(f.model_dump(mode="json"))
        for path, items in by_file.items():
            self.store.put(
                self.key.file_key(path), {"findings": items, "data": data.get(path) or {}}
            )

    def note(self) -> dict[str, Any] | None:
        """What the report says about the reuse (None when every file was checked)."""
        if not self.reused:
            return None
        return {"files_reused": len(self.reused), "files_checked": len(self.checked)}


__all__ = [
    "POLICIES",
    "CacheConfig",
    "CheckKey",
    "FileCache",
    "Policy",
    "ReviewCache",
    "TreeState",
    "cache_folder",
    "check_key",
    "tools_fingerprint",
    "tree_state",
]
