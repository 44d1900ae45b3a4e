"""What changed: the files between a base commit and the working tree, with added line ranges.

Every git call is an argv list (file names never reach a shell) with `core.quotePath=false`,
and paths that git still quotes (quotes, backslashes, control characters) are unquoted here.
"""

from __future__ import annotations

import re
import subprocess
from bisect import bisect_right
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ChangeError as ChangeError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""git's id of the empty tree: the base of a repository's first commit."""
DEFAULT_BASES = ("origin/main", "main")
GIT_TIMEOUT = 120

FileStatus = Literal["added", "modified", "deleted", "renamed"]
_NAME_STATUS: dict[bytes, FileStatus] = {b"A": "added", b"D": "deleted"}
"""`git diff --name-status` letters of a file neither renamed nor copied; any other is a change."""


class ChangedFile(BaseModel):
    """One changed file; `lines` are inclusive [start, end] ranges of added/changed lines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    status: FileStatus
    old_path: str | None = None
    lines: list[tuple[int, int]] = Field(default_factory=list)
    binary: bool = False
    deletions_only: bool = False
    """git's hunks for this file only remove lines: no line of it is new or changed."""

    def touches(self, line: int | None) -> bool:
        """True if `line` was added or changed. A whole-file finding always counts, and so does
        every line of a changed file git shows no hunks for (binary to git, a mode change):
        nothing then says which lines are unchanged, so nothing may be hidden. A file whose
        hunks only delete lines has no changed line: what is found in the rest of it is debt
        the change did not add."""
        if line is None:
            return True
        if not self.lines:
            return not self.deletions_only
        starts = [s for s, _ in self.lines]
        i = bisect_right(starts, line) - 1
        return i >= 0 and self.lines[i][0] <= line <= self.lines[i][1]

    @property
    def changed_line_count(self) -> int:
        return sum(end - start + 1 for start, end in self.lines)


class Change(BaseModel):
    """The change under review. `base` is a commit id (or the empty tree); `head` is HEAD's id
    or None before the first commit; `dirty` says whether the working tree differs from HEAD."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str
    base: str
    base_ref: str
    head: str | None
    dirty: bool
    files: list[ChangedFile] = Field(default_factory=list)

    def get(self, path: str) -> ChangedFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    def present(self) -> list[ChangedFile]:
        """Changed files that exist in the working tree (not deleted)."""
        return [f for f in self.files if f.status != "deleted"]

    def paths(self, *suffixes: str) -> list[str]:
        """Paths of present files, optionally only those ending in one of `suffixes`."""
        return [f.path for f in self.present() if not suffixes or f.path.endswith(suffixes)]

    def matching(self, patterns: list[str]) -> list[str]:
        """Changed paths (deleted ones too) matching a glob, a folder prefix (`core/`) or a
        folder name anywhere in the path (`core/` also matches `src/app/core/x.py`)."""
        return [f.path for f in self.files if path_matches(f.path, patterns)]

    def touches(self, path: str | None, line: int | None) -> bool:
        """Whether a finding at `path:line` is on an added or changed line."""
        if path is None:
            return False
        changed = self.get(_normal(path))
        return changed is not None and changed.touches(line)


WORD = "word:"
"""Pattern prefix: `word:key` matches a path with the word `key` in a folder or file name."""
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def path_words(path: str) -> set[str]:
    """The words of a path's folder and file names, lowercased: split at anything that is not
    a letter or digit and at camelCase humps (`src/AuthService/api_key.py` gives src, auth,
    service, api, key, py)."""
    return {
        w.lower()
        for part in PurePosixPath(path).parts
        for w in re.split(r"[^A-Za-z0-9]+", _CAMEL.sub("-", part))
        if w
    }


def path_matches(path: str, patterns: list[str]) -> bool:
    """`core/` matches a folder named core at any depth; `word:key` matches a path with the
    word key in a name (`api_key.py`, `key/x`, `server.key`; not `keys.py` or `monkey.py`,
    where a glob `*key*` would); other patterns are fnmatch globs tried against the whole
    path and its file name."""
    parts = PurePosixPath(path).parts
    words: set[str] | None = None
    for pattern in patterns:
        if pattern.startswith(WORD):
            if words is None:
                words = path_words(path)
            if pattern[len(WORD) :].lower() in words:
                return True
        elif pattern.endswith("/"):
            folder = PurePosixPath(pattern.rstrip("/")).parts
            n = len(folder)
            if any(parts[i : i + n] == folder for i in range(len(parts) - n)):
                return True
        elif fnmatch(path, pattern) or fnmatch(parts[-1], pattern):
            return True
    return False


def _normal(path: str) -> str:
    return path[2:] if path.startswith("./") else path


def git(
    root: Path, *args: str, check: bool = True, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run git in `root` (argv list, no shell, bounded time); ChangeError on failure."""
    argv = ["git", "-c", "core.quotePath=false", "-C", str(root), *args]
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, timeout=GIT_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise ChangeError("git is not installed (it is needed to find the change)") from None
    except subprocess.TimeoutExpired:
        raise ChangeError(f"git {args[0]} took more than {GIT_TIMEOUT}s") from None
    if check and done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ChangeError(f"git {args[0]} failed: {err[-1] if err else done.returncode}")
    return done


def _out(root: Path, *args: str) -> str | None:
    done = git(root, *args, check=False)
    return done.stdout.decode("utf-8", "replace").strip() if done.returncode == 0 else None


def repo_root(path: Path) -> Path:
    """The top of the git work tree containing `path`."""
    if not path.exists():
        raise ChangeError(f"{path}: no such directory")
    top = _out(path if path.is_dir() else path.parent, "rev-parse", "--show-toplevel")
    if not top:
        raise ChangeError(f"{path}: not a git repository (reviewflow review needs one)")
    return Path(top)


def _commit(root: Path, ref: str) -> str | None:
    return _out(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")


def resolve_base(root: Path, base: str | None, head: str | None, dirty: bool) -> tuple[str, str]:
    """(commit id, how it was chosen). An explicit `base` must exist.

    Default: the merge-base with origin/main, else with main, else HEAD~1, else the empty tree.
    A merge-base equal to HEAD would review nothing on a clean tree, so then the next candidate
    is tried (on a dirty tree HEAD itself is the base: the uncommitted work is the change).
    """
    if base is not None:
        found = _commit(root, base)
        if found is None:
            raise ChangeError(f"--base {base}: no such commit in {root}")
        return found, base
    if head is None:
        return EMPTY_TREE, "empty tree (no commits yet)"
    for ref in DEFAULT_BASES:
        # No merge-base when `ref` names no commit: no `rev-parse` first (a git process less).
        merge_base = _out(root, "merge-base", "HEAD", ref)
        if merge_base and (merge_base != head or dirty):
            return merge_base, f"merge-base with {ref}"
    if dirty:
        return head, "HEAD (uncommitted changes)"
    parent = _commit(root, "HEAD~1")
    if parent is not None:
        return parent, "HEAD~1"
    return EMPTY_TREE, "empty tree (initial commit)"


_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b'"': 34, b"\\": 92}


def unquote_path(raw: bytes) -> str:
    """Undo git's C-style quoting of a path (`"a\\"b.py"`, octal escapes for raw bytes)."""
    if not (raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2):
        return raw.decode("utf-8", "backslashreplace")
    body, out, i = raw[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i : i + 1]
        if c == b"\\" and i + 1 < len(body):
            nxt = body[i + 1 : i + 2]
            if nxt.isdigit():
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt[0]))
            i += 2
            continue
        out += c
        i += 1
    return out.decode("utf-8", "backslashreplace")


def parse_added_lines(patch: bytes) -> dict[str, list[tuple[int, int]]]:
    """Added line ranges per new path from a `git diff -U0` patch.

    A path with hunks that only delete lines is there with no ranges; a path git shows no hunks
    for (binary, mode change only, pure rename) is absent."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    current: list[tuple[int, int]] | None = None
    for line in patch.split(b"\n"):
        if line.startswith(b"+++ "):
            target = line[4:].rstrip(b"\t")
            if target == b"/dev/null":
                current = None
            else:
                name = unquote_path(target)
                name = name[2:] if name.startswith("b/") else name
                current = ranges.setdefault(name, [])
        elif line.startswith(b"@@") and current is not None:
            m = _HUNK.match(line)
            if m:
                start, count = int(m.group(1)), int(m.group(2) or b"1")
                if count:
                    current.append((start, start + count - 1))
    return ranges


def _count_lines(path: Path) -> tuple[int, bool]:
    try:
        data = path.read_bytes()
    except OSError:
        return 0, False
    if b"\0" in data[:8192]:
        return 0, True
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1), False


ALWAYS_EXCLUDED = (".reviewflow/",)
"""reviewflow's own state (database, logs, reports) is never part of the change."""


def collect_change(
    path: str | Path = ".",
    base: str | None = None,
    exclude: tuple[str, ...] = (),
    *,
    root: Path | None = None,
) -> Change:
    """The change in the repository at `path` from `base` (see resolve_base) to the work tree.

    Paths under `exclude` (repository-relative folder prefixes ending in `/`) are left out.
    `root`: the top of the repository, when the caller has it already (`repo_root`).

    Four git processes when `base` is given (rev-parse, status, diff, and the caller's
    `repo_root`): `reviewflow review` runs this before its run exists (docs/benchmarks.md).
    """
    if root is None:
        root = repo_root(Path(path).resolve())
    skip = (*ALWAYS_EXCLUDED, *exclude)
    head, base_found = _head_and_base(root, base)
    # reviewflow's own files (database, logs, reports) do not make the tree dirty.
    pathspec = [
        "--",
        ".",
        ":(exclude,glob)**/.reviewflow/**",
        *(f":(exclude){p.rstrip('/')}" for p in skip),
    ]
    status = git(root, "status", "--porcelain", "-z", "--untracked-files=all", *pathspec).stdout
    dirty = bool(status)
    if base_found is not None:
        base_id, how = base_found
    else:
        base_id, how = resolve_base(root, base, head, dirty)
    # One diff for both: the files with their status (--raw -z), then the patch (-U0).
    out = git(
        root, "diff", "--no-color", "--no-ext-diff", "-M", base_id, "--raw", "-z", "-p", "-U0"
    ).stdout
    names, patch = _split_raw(out)
    added = parse_added_lines(patch)
    files: list[ChangedFile] = []
    seen: set[str] = set()
    i = 0
    while i < len(names) and names[i]:
        code = names[i][:1]
        if code in (b"R", b"C"):
            old, new = (
                names[i + 1].decode("utf-8", "backslashreplace"),
                names[i + 2].decode("utf-8", "backslashreplace"),
            )
            i += 3
            files.append(
                ChangedFile(
                    path=new,
                    status="renamed" if code == b"R" else "added",
                    old_path=old,
                    lines=added.get(new, []),
                    binary=_count_lines(root / new)[1],
                    deletions_only=added.get(new) == [],
                )
            )
            seen.add(new)
            continue
        name = names[i + 1].decode("utf-8", "backslashreplace")
        i += 2
        kind = _NAME_STATUS.get(code, "modified")
        binary = kind != "deleted" and _count_lines(root / name)[1]
        files.append(
            ChangedFile(
                path=name,
                status=kind,
                lines=added.get(name, []),
                binary=binary,
                deletions_only=kind == "modified" and added.get(name) == [],
            )
        )
        seen.add(name)
    for name in _untracked(status):
        if name in seen:
            continue
        count, binary = _count_lines(root / name)
        files.append(
            ChangedFile(
                path=name, status="added", binary=binary, lines=[(1, count)] if count else []
            )
        )
    files = [
        f for f in files if not f.path.startswith(skip) and "/.reviewflow/" not in f"/{f.path}"
    ]
    files.sort(key=lambda f: f.path)
    return Change(root=str(root), base=base_id, base_ref=how, head=head, dirty=dirty, files=files)


def _head_and_base(root: Path, base: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """HEAD's commit id, and (commit id, `base`) for an explicit `base`, in one `git rev-parse`
    when both resolve; otherwise one at a time, for resolve_base's message (None: not known
    yet)."""
    if base is not None and not base.startswith("-"):
        done = git(root, "rev-parse", "HEAD^{commit}", f"{base}^{{commit}}", "--", check=False)
        ids = [i for i in done.stdout.decode("ascii", "replace").split() if i != "--"]
        # Exactly two: a range (`main..feat`) prints its ends as more ids (`^<main>` too),
        # and is not one commit to compare with: resolve_base refuses it by name. (The `--`
        # that ends the revisions is printed back.)
        if done.returncode == 0 and len(ids) == 2 and all(_OBJECT_ID.fullmatch(i) for i in ids):
            return ids[0], (ids[1], base)
    return _commit(root, "HEAD"), None


_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _split_raw(out: bytes) -> tuple[list[bytes], bytes]:
    """`git diff --raw -z -p` output as (`--name-status -z` fields: status, path[, new path],
    ...; then an empty one) and the patch after them."""
    fields: list[bytes] = []
    at = 0
    while out.startswith(b":", at):  # `:old-mode new-mode old-id new-id STATUS\0path\0`
        end = out.index(b"\0", at)
        status = out[at:end].rsplit(b" ", 1)[-1]
        count = 2 if status[:1] in (b"R", b"C") else 1
        fields.append(status)
        at = end + 1
        for _ in range(count):
            end = out.index(b"\0", at)
            fields.append(out[at:end])
            at = end + 1
    if out.startswith(b"\0", at):  # between the raw records and the patch
        at += 1
    fields.append(b"")
    return fields, out[at:]


def _untracked(status: bytes) -> Iterator[str]:
    """The untracked files (`??`) of `git status --porcelain -z` output."""
    records = status.split(b"\0")
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        if len(record) < 4:
            continue
        if record[:2] == b"??":
            yield record[3:].decode("utf-8", "backslashreplace")
        elif b"R" in record[:2] or b"C" in record[:2]:
            i += 1  # `XY new\0old\0`: the next field is the old path
