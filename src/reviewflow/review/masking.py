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
_CACHE: dict[tuple[str, int, int], frozenset[str]] = {}
_CACHE_LOCK = threading.Lock()

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


def plausible(value: str, name: str = "") -> bool:
    """A string that could be a credential: not empty, a placeholder or the name itself."""
    v = value.strip()
    return (
        len(v) >= MIN_SECRET
        and not _NOT_SECRET.match(v)
        and v.lower() != name.lower()
        and not (v.isalpha() and v.lower() in _WORDS)
    )


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
            for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                add(arg.arg, default)
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


def _detect_secrets(root: Path, rel: str, lines: list[str]) -> set[str]:
    try:
        from .checks.code import _scan_secrets
    except ImportError:  # pragma: no cover - code.py is part of the package
        return set()
    try:
        found = _scan_secrets(root, [rel])
    except Exception:  # detect-secrets missing, or a plugin that choked on the file
        return set()
    values: set[str] = set()
    for _, line, _, value in found:
        if value:
            values.add(value)
            values.update(whole_tokens(lines, line, value))
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
    values: set[str] = set()
    if st.st_size <= MAX_FILE_BYTES:
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\0"
        if b"\0" not in data[:8192]:
            text = data.decode("utf-8", "replace")
            lines = text.splitlines()
            values |= private_key_lines(text)
            if rel.endswith((".py", ".pyi")):
                values |= python_secrets(text)
            values |= _detect_secrets(root, rel, lines)
    result = frozenset(v for v in values if len(v) >= MIN_SECRET)
    with _CACHE_LOCK:
        _CACHE[key] = result
    return result


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
