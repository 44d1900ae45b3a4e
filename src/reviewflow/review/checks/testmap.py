"""The tests check's coverage map: run only the tests that executed what changed.

When the tests check runs the whole suite (option `impacted: map`), it measures which test
executed which lines (coverage contexts named by `reviewflow.review.testmap_plugin`, Python
subprocesses included) and stores the map in `.reviewflow/cache/testmap/<command>.json`,
with the commit it was made at and the content of the files that differed from that commit.
A later review compares the work tree with that state and runs:

- the tests that executed a changed file: by their node ids, plus every test using a shared
  (class, module, session) fixture whose setup executed it;
- new and changed test files, whole, and the tests that use them (ran a helper of theirs,
  or import them);
- where the map cannot see the effect of a change, the import graph's choice (impact.py):
  a change at import time (a module-level or class-level statement, a `def` line, a decorator,
  or a function body that ran while modules were imported or tests collected: constants,
  registrations, parametrisations read without executing a line of the file) reaches every
  test that imports the module, whether it executed a line of it or not; so does a module the
  map never saw (new, or executed by no test);
- the whole suite when the map is missing, unreadable, made with another test command or at a
  commit this repository lacks, or in another Python environment (interpreter, installed
  packages, PYTHONPATH); when a file the map cannot account for differs from the map's
  state: a conftest, the test, coverage or packaging configuration, a dependency file, or any
  file that is not Python (a test may read it: no coverage map says which); or when the import
  graph cannot tell who imports a module changed at import time.

The map is refreshed on every whole-suite run, so a review that had to run everything makes
the next one fast. Deleting the folder is safe: the next review runs the whole suite.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ...statedir import STATE_DIR, make_dirs
from ..change import Change, ChangedFile, FileStatus, git, unquote_path
from .impact import CONFIG_FILES, impacted_tests, imported_modules, is_test_file

FORMAT = 1
MAP_DIR = f"{STATE_DIR}/cache/testmap"
PLUGIN = "reviewflow.review.testmap_plugin"
ENV_OUT = "REVIEWFLOW_TESTMAP_OUT"
ENV_RC = "REVIEWFLOW_TESTMAP_RC"
ENV_TEST = "REVIEWFLOW_TESTMAP_TEST"
FIXTURE = "fixture:"
SUBPROCESS_DATA = "subprocess.coverage"
"""Child processes write their data apart from the test process's: the project may measure
branches (`branch = true`), they measure lines, and coverage refuses to combine the two."""

# Files whose change reaches tests in ways no coverage map records: the whole suite runs.
WHOLE_SUITE_FILES = frozenset(
    {
        *CONFIG_FILES,
        ".coveragerc",
        "sitecustomize.py",
        "usercustomize.py",
        "Pipfile",
        "Pipfile.lock",
    }
)
_WHOLE_SUITE_GLOBS = re.compile(r"^(requirements.*\.txt|constraints.*\.txt|.*\.lock|.*\.pth)$")
_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_EXCLUDE = [":(exclude,glob)**/.reviewflow/**", f":(exclude){STATE_DIR}"]


@dataclass
class Selection:
    """What the tests check runs: the whole suite (with why), or these files and node ids."""

    whole: bool
    reason: str
    files: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    total: int | None = None
    commit: str | None = None
    count: int = 0
    """How many of the map's tests the selection holds (new test files not counted)."""
    unmapped: bool = False
    """No usable map at all (missing, unreadable, not trusted): the summary says where the
    next one comes from."""

    def describe(self, ran: int | None = None) -> str:
        """`42 of 1,588 tests: coverage map of 8d5c730` or `whole suite: conftest.py changed`."""
        if self.whole:
            return f"whole suite: {self.reason}"
        if ran is None or self.total is None:
            return self.reason
        return f"{ran:,} of {self.total:,} tests: {self.reason}"


def _whole(reason: str) -> Selection:
    return Selection(whole=True, reason=reason)


def _unmapped(reason: str) -> Selection:
    return Selection(whole=True, reason=reason, unmapped=True)


def map_key(command: Iterable[str]) -> str:
    """One map per test command: another command runs other tests."""
    return hashlib.sha256(json.dumps(list(command)).encode()).hexdigest()[:16]


def map_path(root: Path, command: Iterable[str]) -> Path:
    return root / MAP_DIR / f"{map_key(command)}.json"


def whole_suite_file(path: str) -> bool:
    """A file whose change no coverage map can follow (configuration, dependencies)."""
    name = PurePosixPath(path).name
    return name in WHOLE_SUITE_FILES or bool(_WHOLE_SUITE_GLOBS.match(name))


# ---------------------------------------------------------------------------------- build


@dataclass
class Recorder:
    """What a whole-suite run needs to record the map: environment and pytest arguments."""

    folder: Path
    data_file: Path
    root: Path

    @property
    def env(self) -> dict[str, str]:
        rc = self.folder / "subprocess.coveragerc"
        rc.write_text(
            "[run]\n"
            f"data_file = {self.folder / SUBPROCESS_DATA}\n"
            "parallel = true\n"
            f"source = {self.root}\n"
            f"context = ${{{ENV_TEST}}}\n"
            "sigterm = true\n",
            encoding="utf-8",
        )
        env = {ENV_OUT: str(self.folder), ENV_RC: str(rc), ENV_TEST: ""}
        found = plugin_path()
        if found is not None:
            env["PYTHONPATH"] = found
        return env

    @property
    def pytest_args(self) -> list[str]:
        return ["-p", PLUGIN]


def plugin_path() -> str | None:
    """PYTHONPATH for the suite when this reviewflow was found through the folder the review
    started in: a relative entry of PYTHONPATH (`PYTHONPATH=src python -m reviewflow review
    ../project`) or the current folder itself (`cd src && python -m reviewflow review ...`), a
    checkout used without pip. The suite runs in the repository, where neither names it,
    and pytest could not import the plugin (exit 4: no map, inline or in the background).
    The folder is added last, so the project's own paths still come first. None: nothing
    to add (found through site-packages or an absolute entry)."""
    home = os.path.realpath(Path(__file__).parents[3])
    current = os.environ.get("PYTHONPATH", "")
    entries = [e for e in current.split(os.pathsep) if e]
    if any(os.path.isabs(e) and os.path.realpath(e) == home for e in entries):
        return None
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:
        here = None
    if here != home and not any(os.path.realpath(e) == home for e in entries):
        return None
    return f"{current}{os.pathsep}{home}" if current else home


def recorder(tmp: Path, data_file: Path, root: Path) -> Recorder:
    folder = tmp / "testmap"
    folder.mkdir(exist_ok=True)
    return Recorder(folder, data_file, root)


def build(root: Path, rec: Recorder, command: list[str]) -> dict[str, Any] | None:
    """Read the combined coverage data and the plugin's files; store the map. None (and the
    old map kept) when the run recorded nothing usable."""
    side = _side_files(rec.folder, root)
    if side is None or not rec.data_file.exists():
        return None
    tests: list[str] = side["collected"]
    if not tests:
        return None
    index = {t: i for i, t in enumerate(tests)}
    fixtures: dict[str, list[int]] = {}
    for test, names in side["fixtures"].items():
        i = index.get(test)
        if i is None:
            continue
        for name in names:
            fixtures.setdefault(name, []).append(i)
    lines: dict[str, dict[int, set[str]]] = {}
    try:
        from coverage import CoverageData

        roots = {root, root.resolve()}
        paths = [rec.data_file, *sorted(rec.folder.glob(f"{SUBPROCESS_DATA}.*"))]
        for path in paths:
            data = CoverageData(basename=str(path))
            data.read()
            for name in data.measured_files():
                rel = _relative(Path(name), roots)
                if rel is None or rel.startswith(f"{STATE_DIR}/"):
                    continue
                into = lines.setdefault(rel, {})
                for line, measured in data.contexts_by_lineno(name).items():
                    into.setdefault(line, set()).update(measured)
    except Exception:  # a data file coverage cannot read: keep the old map
        return None
    prefix = side["prefix"]
    files: dict[str, dict[str, Any]] = {}
    for rel, by_line in lines.items():
        hit: set[int] = set()
        used: set[str] = set()
        import_lines: set[int] = set()
        for line, contexts in by_line.items():
            for context in contexts:
                node = _node(context, prefix)
                if node in index:
                    hit.add(index[node])
                elif context.startswith(FIXTURE):
                    used.add(context[len(FIXTURE) :])
                else:  # import time, collection, or a context we do not know
                    import_lines.add(line)
        files[rel] = {
            "tests": sorted(hit),
            "fixtures": sorted(used),
            "import": sorted(import_lines),
            "lines": sorted(by_line),
        }
    head = _head(root)
    if head is None:
        return None
    doc = {
        "format": FORMAT,
        "command": command,
        "commit": head,
        "dirty": _dirty_state(root),
        "environment": environment(),
        "made_at": time.time(),
        "tests": tests,
        "fixtures": fixtures,
        "files": files,
    }
    write_json(map_path(root, command), doc)
    return doc


def environment() -> str:
    """What the suite ran in, besides the repository: the interpreter, the installed
    distributions (a dist-info folder is named with its version) and PYTHONPATH. An upgraded
    library or plugin can fail a test whose files did not change: the map no longer says."""
    import sys

    h = hashlib.sha256(f"{sys.version}\n{sys.executable}\n".encode())
    h.update(f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}\n".encode())
    here = {"", ".", os.getcwd()}
    for entry in sys.path:
        if entry in here:
            continue
        try:
            names = sorted(os.listdir(entry))
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")):
                h.update(f"{entry}/{name}\n".encode())
    return h.hexdigest()[:32]


def _node(context: str, prefix: str) -> str:
    return f"{prefix}{context}" if prefix and context else context


def _side_files(folder: Path, root: Path) -> dict[str, Any] | None:
    collected: list[str] = []
    seen: set[str] = set()
    fixtures: dict[str, list[str]] = {}
    prefix = ""
    found = False
    for path in sorted(folder.glob("tests-*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        found = True
        rel = _relative(Path(doc.get("rootdir") or root), {root, root.resolve()})
        prefix = "" if rel in (None, "", ".") else f"{rel}/"
        for test in doc.get("collected", []):
            if test not in seen:
                seen.add(test)
                collected.append(test)
        fixtures.update(doc.get("fixtures", {}))
    if not found:
        return None
    if prefix:
        collected = [prefix + t for t in collected]
        fixtures = {prefix + t: names for t, names in fixtures.items()}
    return {"collected": collected, "fixtures": fixtures, "prefix": prefix}


def _relative(path: Path, roots: Iterable[Path]) -> str | None:
    for root in roots:
        with contextlib.suppress(ValueError):
            rel = path.relative_to(root).as_posix()
            return "" if rel == "." else rel
    return None


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace `path` with `doc` whole: a reader sees the old file or the new, never half."""
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".testmap-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _head(root: Path) -> str | None:
    done = git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return done.stdout.decode().strip() or None if done.returncode == 0 else None


@dataclass(frozen=True)
class TreeState:
    """The commit and the uncommitted files' content a suite runs on."""

    head: str | None
    tracked: dict[str, str | None]
    untracked: dict[str, str | None]


def tree_state(root: Path) -> TreeState:
    tracked = git(root, "diff", "--name-only", "-z", "HEAD", "--", ".", *_EXCLUDE, check=False)
    others = git(
        root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".", *_EXCLUDE, check=False
    )
    return TreeState(
        _head(root), _hashes(root, _split(tracked.stdout)), _hashes(root, _split(others.stdout))
    )


def same_tree(before: TreeState, after: TreeState) -> bool:
    """Nothing the suite ran on changed while it ran. Untracked files the run created (a
    suite writing a report into the work tree) do not count; the map notes them as they are."""
    return (
        before.head == after.head
        and before.tracked == after.tracked
        and all(after.untracked.get(p) == h for p, h in before.untracked.items())
    )


def _dirty_state(root: Path) -> dict[str, str | None]:
    """Files that differ from HEAD (uncommitted work the suite ran on): their content hash,
    None for a deleted one."""
    state = tree_state(root)
    return dict(sorted({**state.tracked, **state.untracked}.items()))


def _split(raw: bytes) -> list[str]:
    return [p.decode("utf-8", "backslashreplace") for p in raw.split(b"\0") if p]


def _hashes(root: Path, paths: Iterable[str]) -> dict[str, str | None]:
    """git's blob id of each file as it is in the work tree (None: no such file)."""
    present = [p for p in paths if (root / p).is_file()]
    out: dict[str, str | None] = {p: None for p in paths}
    if present:
        done = subprocess.run(
            ["git", "-C", str(root), "hash-object", "--stdin-paths"],
            input="\n".join(present).encode() + b"\n",
            capture_output=True,
            timeout=120,
            check=False,
        )
        ids = done.stdout.decode().split()
        if done.returncode == 0 and len(ids) == len(present):
            out.update(zip(present, ids, strict=True))
        else:  # cannot tell: treat them all as changed
            out.update({p: "?" for p in present})
    return out


# ---------------------------------------------------------------------------------- select


@dataclass
class _Diff:
    path: str
    old_path: str
    status: str  # A, D, M, R
    old_known: bool = True
    hunks: list[tuple[int, int, int, int]] = field(default_factory=list)


def load(root: Path, command: list[str]) -> dict[str, Any] | None:
    try:
        doc = json.loads(map_path(root, command).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def select(root: Path, change: Change, command: list[str], candidates: Iterable[str]) -> Selection:
    """The tests to run for the work tree as it is now, from the map of `command`'s suite."""
    path = map_path(root, command)
    if not path.exists():
        return _unmapped("no coverage map yet")
    doc = load(root, command)
    if doc is None or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        return _unmapped(f"coverage map unreadable: {path.relative_to(root)}")
    if doc.get("command") != command:
        return _whole("the coverage map was made with another test command")
    if doc.get("environment") != environment():
        return _whole(
            "the Python environment changed since the coverage map (interpreter, installed "
            "packages or PYTHONPATH)"
        )
    commit = str(doc.get("commit") or "")
    short = commit[:7]
    if not commit or not _has_commit(root, commit):
        return _whole(f"the coverage map's commit {short or '?'} is not in this repository")
    try:
        diffs = _differences(root, commit, doc.get("dirty") or {})
    except Exception as exc:  # git failed: nothing says what changed
        return _whole(f"cannot compare with the coverage map's commit {short}: {exc}")
    tests: list[str] = doc["tests"]
    fixture_users: dict[str, list[int]] = doc.get("fixtures") or {}
    files: dict[str, dict[str, Any]] = doc["files"]
    chosen_files: set[str] = set()
    nodes: set[int] = set()
    static: list[_Diff] = []
    changed_tests: set[str] = set()
    candidates = list(candidates)
    old_sources = _blobs(
        root,
        commit,
        [
            d.old_path
            for d in diffs
            if d.old_known and d.status != "A" and _is_source(d.old_path) and d.old_path in files
        ],
    )
    for d in diffs:
        for p in {d.path, d.old_path}:
            if whole_suite_file(p):
                return _whole(f"{p} changed")
        if not (_python(d.path) and _python(d.old_path)):
            shown = d.path if not _python(d.path) else d.old_path
            return _whole(f"{shown} changed (not Python: the map cannot say which tests read it)")
        if is_test_file(d.path) or is_test_file(d.old_path):
            if d.status != "D" and is_test_file(d.path):
                chosen_files.add(d.path)
            # Another test may use it: a helper it defines ran in that test, a constant was
            # imported by that test's module.
            entry = files.get(d.old_path)
            if entry is not None:
                nodes.update(entry.get("tests", ()))
                for name in entry.get("fixtures", ()):
                    nodes.update(fixture_users.get(name, ()))
            changed_tests.update({d.path, d.old_path})
            continue
        entry = files.get(d.old_path) if d.status != "A" else None
        if entry is not None:
            nodes.update(entry.get("tests", ()))
            for name in entry.get("fixtures", ()):
                nodes.update(fixture_users.get(name, ()))
        body_only = (
            entry is not None
            and d.status == "M"  # a rename breaks every importer of the old name
            and d.old_known
            and _body_only(root, d, old_sources.get(d.old_path), set(entry.get("import", ())))
        )
        if not body_only:
            static.append(d)
    if changed_tests:
        chosen_files.update(_test_importers(root, changed_tests, candidates))
    if static:
        sub = Change(
            root=str(root),
            base=commit,
            base_ref="coverage map",
            head=None,
            dirty=True,
            files=[_changed_file(d) for d in static],
        )
        found = impacted_tests(root, sub, candidates)
        if found is None:
            shown = ", ".join(sorted({d.path for d in static})[:3])
            return _whole(
                f"{shown} changed at import time and the import graph cannot tell which tests "
                "reach it"
            )
        chosen_files.update(found)
    picked = sorted(
        t
        for t in (tests[i] for i in nodes if 0 <= i < len(tests))
        if t.split("::", 1)[0] not in chosen_files and (root / t.split("::", 1)[0]).is_file()
    )
    chosen = sorted(f for f in chosen_files if (root / f).is_file())
    whole_files = set(chosen)
    return Selection(
        whole=False,
        reason=f"coverage map of {short}",
        files=chosen,
        nodes=picked,
        total=len(tests),
        commit=commit,
        count=len(picked) + sum(1 for t in tests if t.split("::", 1)[0] in whole_files),
    )


def _test_importers(root: Path, paths: set[str], candidates: Iterable[str]) -> set[str]:
    """Test files that import one of the test modules `paths` (by the module's own name, the
    last part of the dotted name: test folders are imported with or without a package)."""
    stems = {PurePosixPath(p).stem for p in paths}
    out: set[str] = set()
    for test in candidates:
        if test in paths:
            continue
        try:
            imports = imported_modules((root / test).read_bytes())
        except OSError:
            continue
        if any(part in stems for name in imports for part in name.split(".")):
            out.add(test)
    return out


def _python(path: str) -> bool:
    return path.endswith(".py")


def _is_source(path: str) -> bool:
    return _python(path) and not is_test_file(path)


_STATUSES: dict[str, FileStatus] = {"A": "added", "D": "deleted", "R": "renamed"}
"""git's status letters; any other (M, T, ...) is a modification."""


def _changed_file(d: _Diff) -> ChangedFile:
    return ChangedFile(
        path=d.path,
        status=_STATUSES.get(d.status, "modified"),
        old_path=d.old_path if d.old_path != d.path else None,
    )


def _has_commit(root: Path, commit: str) -> bool:
    done = git(root, "cat-file", "-e", f"{commit}^{{commit}}", check=False)
    return done.returncode == 0


def _differences(root: Path, commit: str, dirty: Mapping[str, str | None]) -> list[_Diff]:
    """Every file whose content differs from the map's state, with its hunks."""
    args = ["diff", "--no-color", "--no-ext-diff", "-M", commit]
    names = git(root, *args, "--name-status", "-z", "--", ".", *_EXCLUDE).stdout.split(b"\0")
    patch = git(root, *args, "-U0", "--", ".", *_EXCLUDE).stdout
    hunks = _parse_hunks(patch)
    diffs: dict[str, _Diff] = {}
    i = 0
    while i < len(names) and names[i]:
        code = names[i][:1].decode()
        if code in ("R", "C"):
            old, new = _split(names[i + 1])[0], _split(names[i + 2])[0]
            i += 3
            d = _Diff(new, old, "R" if code == "R" else "A")
        else:
            new = _split(names[i + 1])[0]
            i += 2
            d = _Diff(new, new, code if code in ("A", "D") else "M")
        d.hunks = hunks.get(d.path if d.status != "D" else d.old_path, [])
        diffs[d.path] = d
    untracked = git(
        root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".", *_EXCLUDE
    ).stdout
    for p in _split(untracked):
        diffs.setdefault(p, _Diff(p, p, "A"))
    if dirty:
        now = _hashes(root, dirty)
        for p, recorded in dirty.items():
            if now.get(p) == recorded and recorded != "?":
                diffs.pop(p, None)  # as it was when the map was made
            else:
                # differs from what the suite ran on, whose text is not kept: no line-level view
                d = diffs.get(p) or _Diff(p, p, "M" if now.get(p) else "D")
                if d.status == "A" and recorded is not None:
                    d.status = "M"
                d.old_known = False
                diffs[p] = d
    return sorted(diffs.values(), key=lambda d: d.path)


def _parse_hunks(patch: bytes) -> dict[str, list[tuple[int, int, int, int]]]:
    """(old start, old count, new start, new count) per path (the new one; the old one for a
    deletion) from a `git diff -U0` patch."""
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    old_name: str | None = None
    current: list[tuple[int, int, int, int]] | None = None
    for line in patch.split(b"\n"):
        if line.startswith(b"--- "):
            target = line[4:].rstrip(b"\t")
            old_name = None if target == b"/dev/null" else _strip(unquote_path(target), "a/")
        elif line.startswith(b"+++ "):
            target = line[4:].rstrip(b"\t")
            name = old_name if target == b"/dev/null" else _strip(unquote_path(target), "b/")
            current = out.setdefault(name, []) if name is not None else None
        elif line.startswith(b"@@") and current is not None:
            m = _HUNK.match(line)
            if m:
                current.append(
                    (
                        int(m.group(1)),
                        int(m.group(2) or b"1"),
                        int(m.group(3)),
                        int(m.group(4) or b"1"),
                    )
                )
    return out


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


def _blobs(root: Path, commit: str, paths: list[str]) -> dict[str, bytes]:
    """The files' content at `commit`, in one `git cat-file --batch`."""
    if not paths:
        return {}
    request = "".join(f"{commit}:{p}\n" for p in paths).encode()
    done = subprocess.run(
        ["git", "-C", str(root), "cat-file", "--batch"],
        input=request,
        capture_output=True,
        timeout=120,
        check=False,
    )
    out: dict[str, bytes] = {}
    data, pos = done.stdout, 0
    for p in paths:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        header = data[pos:end].split()
        pos = end + 1
        if len(header) != 3 or header[1] != b"blob":
            continue  # "<ref> missing"
        size = int(header[2])
        out[p] = data[pos : pos + size]
        pos += size + 1
    return out


def _body_only(root: Path, d: _Diff, old: bytes | None, import_lines: set[int]) -> bool:
    """Every changed line lies inside a function's body, before and after the change, and
    none of the old ones ran at import time: only the tests that ran the function can see it."""
    if old is None or not d.hunks:
        return False
    try:
        new = (root / d.path).read_bytes()
    except OSError:
        return False
    old_body, new_body = _body_lines(old), _body_lines(new)
    if old_body is None or new_body is None:
        return False
    # A function the module calls while it is imported (`TABLE = _build()`, a decorator) runs
    # at import time, in whichever test imported the module first: not only its callers' tests.
    at_import = _import_time_calls(old) | _import_time_calls(new)
    for old_start, old_count, new_start, new_count in d.hunks:
        old_lines = set(range(old_start, old_start + old_count))
        new_lines = set(range(new_start, new_start + new_count))
        if not old_lines <= old_body or old_lines & import_lines or not new_lines <= new_body:
            return False
        if not old_count and not ({old_start, old_start + 1} & old_body):
            return False  # an insertion between functions
        if _enclosing(old, old_lines or {old_start}) & at_import or (
            _enclosing(new, new_lines) & at_import
        ):
            return False
    return True


def _import_time_calls(source: bytes) -> set[str]:
    """Names the module calls or decorates with while it is imported: calls outside function
    bodies (module and class level, default values, decorators) and decorator names."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                names.update(_called(dec, top=True))
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    names.update(_called(default))
            return  # the body runs when called, not at import
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.ClassDef):
            for dec in node.decorator_list:
                names.update(_called(dec, top=True))
        if isinstance(node, ast.Call):
            names.update(_called(node))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _called(node: ast.AST, top: bool = False) -> set[str]:
    """Function names called in `node` (a decorator `@name` counts as a call of `name`)."""
    out: set[str] = set()
    if top and isinstance(node, ast.Name | ast.Attribute):
        out.add(node.id if isinstance(node, ast.Name) else node.attr)
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                out.add(func.id)
            elif isinstance(func, ast.Attribute):
                out.add(func.attr)
    return out


def _enclosing(source: bytes, lines: set[int]) -> set[str]:
    """Names of the functions whose body holds any of `lines`, at every depth."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            end = node.end_lineno or node.lineno
            if any(node.lineno <= n <= end for n in lines):
                out.add(node.name)
    return out


def _body_lines(source: bytes) -> set[int] | None:
    """Lines inside a function's body (the statements after its signature), at any depth."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", ()))])
            end = node.end_lineno or first.lineno
            if start > node.lineno:
                lines.update(range(start, end + 1))
    return lines


__all__ = ["Selection", "build", "load", "map_path", "recorder", "select", "whole_suite_file"]
