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
import secrets
import threading
import time
from collections import OrderedDict
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


SESSION_COOKIE = "rf_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = 12 * 3600.0
MAX_SESSIONS = 1000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's login: the rights of the token it presented once, and its CSRF token."""

    token: Token
    csrf: str
    expires: float


class Sessions:
    """The dashboard's logins, in memory (a restart logs browsers out: they log in again).

    A browser presents a token once (POST /ui/login) and gets an opaque HttpOnly cookie; the
    token itself never travels again. `once` holds tokens that may log in a single time
    (`reviewflow ui`'s fresh token): a copied URL is useless after its first use.
    """

    def __init__(self, once: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._once = {_digest(t) for t in once}

    def login(self, tokens: TokenSet, presented: str) -> tuple[str, Session] | None:
        token = tokens.match(presented)
        if token is None:
            digest = _digest(presented)
            with self._lock:
                known = next((d for d in self._once if hmac.compare_digest(d, digest)), None)
                if known is None:
                    return None
                self._once.discard(known)
            token = Token(digest, read_only=False)
        sid = secrets.token_urlsafe(32)
        session = Session(token, secrets.token_urlsafe(32), time.time() + SESSION_TTL)
        with self._lock:
            self._by_id[sid] = session
            while len(self._by_id) > MAX_SESSIONS:
                self._by_id.popitem(last=False)
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is not None and session.expires < time.time():
                del self._by_id[sid]
                return None
        return session

    def logout(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


def same_origin(request: Request) -> bool:
    """The request comes from a page of this server (or from no page: not a browser's
    cross-site request). Browsers send Origin on every POST; Sec-Fetch-Site when they can."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"{request.url.scheme}://{host}", f"http://{host}", f"https://{host}")


def session_of(request: Request) -> Session | None:
    sessions: Sessions | None = getattr(request.app.state, "ui_sessions", None)
    if sessions is None:
        return None
    return sessions.get(request.cookies.get(SESSION_COOKIE))


def _cookie_token(request: Request) -> Token | None:
    """The token of the browser session, with the CSRF checks of a write: the session's
    CSRF token in X-CSRF-Token (a page of another site cannot read it) and a same-origin
    request; a cookie alone never changes anything."""
    session = session_of(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header (CSRF check)")
        if not same_origin(request):
            raise HTTPException(403, "cross-origin request refused (CSRF check)")
    return session.token


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def authenticated(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Token:
    """The caller's token (any), or 401. A browser of the dashboard is known by its session
    cookie instead (see Sessions)."""
    if credentials is None:
        token = _cookie_token(request)
        if token is not None:
            return token
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    tokens: TokenSet = request.app.state.rf.tokens
    token = tokens.match(credentials.credentials)
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
