"""The secret values of a change, so that no report, log, event or stored result shows one.

Every check task and the summary find them afresh in the changed files (once per process and
file version: a cache keyed by size and modification time), whichever checks the template
runs: the public-API docs check quotes a signature `def f(password="…")` even when no secret
scan is part of the review. Found here:

- what detect-secrets finds (when installed), widened to the whole token around it;
- what bandit's hard-coded password rules flag (B105 assignments and comparisons, B106
  keyword arguments, B107 defaults), found with `ast` for names like `password`, `db_pwd`,
  `api_key`, `auth_token` — a token in a default argument or a signature included;
- the body of a private key block (`-----BEGIN … PRIVATE KEY-----`), line by line.

The values live only in memory: what is stored is masked text (`findings.mask_text`).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .change import Change
from .findings import mask_data, mask_text

MAX_FILE_BYTES = 2_000_000
"""Larger files are not read for secrets (a generated bundle, a data file)."""
MIN_SECRET = 4
MAX_CACHED = 20_000
_CACHE: dict[tuple[str, int, int], frozenset[str]] = {}
_CACHE_LOCK = threading.Lock()
_BUSY: dict[tuple[str, int, int], threading.Lock] = {}

_WORDS = (
    "password",
    "passwd",
    "pass",
    "passphrase",
    "pwd",
    "pw",
    "secret",
    "secrete",
    "token",
    "apikey",
    "credential",
    "credentials",
    "creds",
)
_KEY_KINDS = ("api", "secret", "private", "access", "signing", "encryption", "client", "master")
"""`key` alone names many things (`sort_key`); these kinds of key are credentials."""
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_SECRET = re.compile(r"^(?:\s*|[\w.-]{0,3}|[*x•.]+|<[^<>]*>|\$\{?\w+\}?|%\(\w+\)s|\{\w*\})$")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(.*?)-----END[A-Z0-9 ]*PRIVATE KEY", re.S
)
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_\-+/=.]")


def secret_name(name: str) -> bool:
    """`password`, `DB_PASSWORD`, `apiKey`, `auth_token`: a name that holds a credential.

    Words, not substrings: `monkey`, `keyboard` and `passenger` are not credential names."""
    words = [w.lower() for w in re.split(r"[^A-Za-z0-9]+", _CAMEL.sub("_", name)) if w]
    return any(w in _WORDS for w in words) or any(
        w == "key" and i > 0 and words[i - 1] in _KEY_KINDS for i, w in enumerate(words)
    )


_PLACEHOLDERS = {"none", "null", "true", "false", "bearer", "basic", "unset", "default", "empty"}
_PROSE = re.compile(r"\s|^[a-z]+$|^[\w.]+:[\w.]+$|`")
"""A sentence, a plain lowercase word (`always`, the project's name), an import path: what a
keyword heuristic picks up after `secret:` in a template or a test, not a credential."""
_ENV_NAME = re.compile(r"^(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]+)$")


def plausible(value: str, name: str = "") -> bool:
    """A string that could be a credential: not empty, a placeholder, an environment
    variable's name (`"DB_PASSWORD"`: where the value is read from) or the name itself."""
    v = value.strip()
    return (
        len(v) >= MIN_SECRET
        and not _NOT_SECRET.match(v)
        and not _PROSE.search(v)
        and not _ENV_NAME.match(v)
        and v.lower() not in _PLACEHOLDERS
        and v.lower() != name.lower()
        and not (v.isalpha() and v.lower() in _WORDS)
    )


_NAME_HINT = re.compile(r"pass|pwd|secret|token|cred|key", re.IGNORECASE)
"""A file without any of these has no credential-named variable: no need to parse it."""


def python_secrets(source: str) -> set[str]:
    """String literals bandit's B105-B107 would flag: assigned to, compared with, passed as or
    defaulting a credential-named variable, attribute, key, keyword or parameter."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    found: set[str] = set()

    def add(name: str | None, node: ast.AST | None) -> None:
        if (
            name
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and secret_name(name)
            and plausible(node.value, name)
        ):
            found.add(node.value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                add(_target_name(target), node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            add(_target_name(node.target), node.value)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            names = [n for n in map(_target_name, sides) if n]
            for name in names:
                for side in sides:
                    add(name, side)
        elif isinstance(node, ast.Call):
            for kw in node.keywords:
                add(kw.arg, kw.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    add(key.value, value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            for arg, default in zip(positional[::-1], args.defaults[::-1], strict=False):
                add(arg.arg, default)
            for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                add(arg.arg, kw_default)
    return found


def _target_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
    return None


def private_key_lines(text: str) -> set[str]:
    """The body lines of every private key block (each alone is enough to mask its quote)."""
    out: set[str] = set()
    for m in _PRIVATE_KEY.finditer(text):
        body = [ln.strip() for ln in m.group(1).splitlines() if ln.strip()]
        out.update(ln for ln in body if len(ln) >= 8 and ":" not in ln)
    return out


_HINT = re.compile(
    r"pass|pwd|secret|token|cred|bearer|contrase|-----BEGIN|key_?pass"
    r"|(?:api|auth|service|account|db|database|priv|private|client|access|signing)_?key"
    r"|://[^/\s:@]+:[^@\s]+@",
    re.IGNORECASE,
)
_RUN = re.compile(r"[A-Za-z0-9+/=_\-.:]{16,}")


def candidate(line: str) -> bool:
    """Whether detect-secrets could find anything on `line`: a credential word, a URL with a
    password, or a long run of token characters with letters and digits (keys, hashes, AKIA…,
    ghp_…, xoxb-…). detect-secrets costs milliseconds a line; most lines of code are none."""
    if _HINT.search(line):
        return True
    return any(
        any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        for run in _RUN.findall(line)
    )


def _detect_secrets(root: Path, rel: str, lines: list[str]) -> set[str]:
    """What detect-secrets finds on the lines that could hold a secret (see `candidate`), as
    its file scan would (same plugins, same filters, same context), widened to the whole
    token around each value."""
    todo = [
        (number, line)
        for number, raw in enumerate(lines, 1)
        if len(line := raw.rstrip()) <= 4000 and candidate(line)
    ]
    if not todo or importlib.util.find_spec("detect_secrets") is None:
        return set()  # nothing to ask, or not installed: the other detectors still run
    from .checks.code import _SECRETS_LOCK, _scan_secrets

    try:
        from detect_secrets.core.scan import _is_filtered_out, _scan_line
        from detect_secrets.settings import default_settings, get_plugins
        from detect_secrets.util.code_snippet import get_code_snippet
    except ImportError:  # another detect-secrets version: its whole-file scan, slower
        values: set[str] = set()
        for _, number, _, value in _scan_secrets(root, [rel]):
            if value:
                values |= {value, *whole_tokens(lines, number, value)}
        return values
    values = set()
    with _SECRETS_LOCK, default_settings():
        try:
            plugins = list(get_plugins())
        except Exception:
            return set()
        for number, line in todo:
            snippet = get_code_snippet(lines=lines, line_number=number)
            try:
                if _is_filtered_out(
                    required_filter_parameters=["line"], filename=rel, line=line, context=snippet
                ):
                    continue
                found = [
                    secret.secret_value
                    for plugin in plugins
                    for secret in _scan_line(
                        plugin=plugin,
                        filename=rel,
                        line=line,
                        line_number=number,
                        context=snippet,
                    )
                    if secret.secret_value
                    and plausible(secret.secret_value)
                    and not _is_filtered_out(
                        required_filter_parameters=["context"],
                        filename=rel,
                        secret=secret.secret_value,
                        plugin=plugin,
                        line=line,
                        context=snippet,
                    )
                ]
            except Exception:  # a plugin that chokes on a line must not stop the review
                continue
            for value in found:
                values.add(value)
                values.update(whole_tokens(lines, number, value))
    return values


def whole_tokens(lines: list[str], line: int | None, value: str) -> set[str]:
    """Some detectors report only part of a secret (a token's prefix): the whole token around
    each occurrence on its line."""
    text = lines[line - 1] if line and 0 < line <= len(lines) else ""
    out: set[str] = set()
    start = text.find(value)
    while start >= 0:
        lo, hi = start, start + len(value)
        while lo > 0 and _TOKEN_CHAR.match(text[lo - 1]):
            lo -= 1
        while hi < len(text) and _TOKEN_CHAR.match(text[hi]):
            hi += 1
        if hi - lo >= 8:
            out.add(text[lo:hi])
        start = text.find(value, start + 1)
    return out


def file_secrets(root: Path, rel: str) -> frozenset[str]:
    """The secret values in one file of the work tree (cached per file version)."""
    path = root / rel
    try:
        if path.is_symlink() or not path.is_file():
            return frozenset()
        st = path.stat()
    except OSError:
        return frozenset()
    key = (os.path.normpath(path), st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        busy = _BUSY.setdefault(key, threading.Lock())
    with busy:  # the check tasks of one review start together: one scan per file, not four
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        result = _scan_file(root, rel, path, st.st_size)
        with _CACHE_LOCK:
            if len(_CACHE) >= MAX_CACHED:  # a long-lived worker reviews many versions
                _CACHE.clear()
            _CACHE[key] = result
            _BUSY.pop(key, None)
        return result


def _scan_file(root: Path, rel: str, path: Path, size: int) -> frozenset[str]:
    values: set[str] = set()
    if size <= MAX_FILE_BYTES:
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\0"
        if b"\0" not in data[:8192]:
            text = data.decode("utf-8", "replace")
            lines = text.splitlines()
            values |= private_key_lines(text)
            if rel.endswith((".py", ".pyi")) and _NAME_HINT.search(text):
                values |= python_secrets(text)
            values |= _detect_secrets(root, rel, lines)
    return frozenset(v for v in values if len(v) >= MIN_SECRET)


class Masker:
    """Masks the secret values of one change in every text and value it is given."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values: set[str] = {v for v in values if len(v) >= MIN_SECRET}

    @classmethod
    def for_change(cls, change: Change) -> Masker:
        """Masker of the secrets in the change's present text files."""
        root = Path(change.root)
        values: set[str] = set()
        for f in change.present():
            if not f.binary:
                values |= file_secrets(root, f.path)
        return cls(values)

    def add(self, values: Iterable[str]) -> None:
        """Values a check flagged itself (its `CheckResult.secrets`)."""
        self.values.update(v for v in values if len(v) >= MIN_SECRET)

    def text(self, text: str) -> str:
        return mask_text(text, self.values) if self.values else text

    def data(self, data: Any) -> Any:
        return mask_data(data, self.values)

    def file(self, path: Path | None) -> None:
        """Mask a log file in place (what a tool printed before masking could start)."""
        if path is None or not self.values:
            return
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        masked = self.text(text)
        if masked != text:
            tmp = path.with_name(path.name + ".masking")
            tmp.write_text(masked, encoding="utf-8")
            tmp.replace(path)
