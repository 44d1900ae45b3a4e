"""Bearer tokens: read-write (`TOKEN`) or read-only (`ro:TOKEN`, the client sends `TOKEN`).

Tokens come from REVIEWFLOW_API_TOKENS (comma-separated) or a file with one token per line in
the same form (blank lines and lines starting with `#` are skipped). A presented token is
compared with every configured one, in constant time and without stopping at the first match:
both sides are hashed first (so the comparison does not even depend on their lengths) and
`hmac.compare_digest` compares the digests.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .http import strict_query

READ_ONLY_PREFIX = "ro:"

bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`; tokens from REVIEWFLOW_API_TOKENS or "
    "--tokens-file. A token configured as `ro:TOKEN` may only read.",
)


@dataclass(frozen=True, slots=True)
class Token:
    digest: bytes
    read_only: bool


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def parse_tokens(entries: Iterable[str]) -> list[Token]:
    """Tokens from entries `TOKEN` or `ro:TOKEN` (surrounding blanks ignored, empty skipped)."""
    out = []
    for raw in entries:
        entry = raw.strip()
        read_only = entry.startswith(READ_ONLY_PREFIX)
        if read_only:
            entry = entry[len(READ_ONLY_PREFIX) :].strip()
        if entry:
            out.append(Token(_digest(entry), read_only))
    return out


def tokens_from_env(value: str | None) -> list[Token]:
    return parse_tokens((value or "").split(","))


def tokens_from_file(path: Path) -> list[Token]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return parse_tokens(line for line in lines if not line.lstrip().startswith("#"))


class TokenSet:
    """The configured tokens; `match` says whether a presented one is known, and how."""

    def __init__(self, tokens: Iterable[Token]) -> None:
        self.tokens = list(tokens)

    def match(self, presented: str) -> Token | None:
        digest = _digest(presented)
        found: Token | None = None
        for token in self.tokens:  # all of them: no early exit on a match
            if hmac.compare_digest(digest, token.digest) and found is None:
                found = token
        return found


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def authenticated(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Token:
    """The caller's token (any), or 401."""
    if credentials is None:
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    token = request.app.state.rf.tokens.match(credentials.credentials)
    if token is None:
        raise _unauthorized("unknown bearer token")
    return token


def can_read(request: Request, token: Token = Depends(authenticated)) -> Token:
    """The caller's token (then: no unknown query parameters)."""
    strict_query(request)
    return token


def can_write(request: Request, token: Token = Depends(authenticated)) -> Token:
    """The caller's token if it may change things; a read-only one gets 403."""
    if token.read_only:
        raise HTTPException(403, "this token is read-only")
    strict_query(request)
    return token
