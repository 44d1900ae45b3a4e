"""GitHub credentials: a token, or a GitHub App's installation token, and git's credential helper.

Two ways to authenticate, both read from the environment so no secret is ever in argv, a URL,
a workflow spec, an event or the database:

- `GITHUB_TOKEN` (Actions' token, a personal token): used as it is.
- A GitHub App: `REVIEWFLOW_GITHUB_APP_ID` (the App id or its client id) and
  `REVIEWFLOW_GITHUB_APP_KEY_FILE` (its private key, a PEM file). The App signs a JWT (RS256,
  PyJWT) valid ten minutes, finds its installation on the repository and exchanges the JWT for
  an installation token scoped to that one repository. The token is cached in the process
  until a minute before it expires, and minted again when GitHub answers 401 (revoked early).

`reviewflow github credential` is git's credential helper over the same credentials: the review
run's fetch tasks set `credential.<server>.helper` through `GIT_CONFIG_*` environment variables
(`fetch_env`), so git asks this process for a password when the repository is private and the
token goes from here to git's stdin, nowhere else. It answers only for the configured GitHub
server (`GITHUB_SERVER_URL`, default https://github.com): a clone URL elsewhere gets nothing.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import github as gh

APP_ID_ENV = "REVIEWFLOW_GITHUB_APP_ID"
APP_KEY_ENV = "REVIEWFLOW_GITHUB_APP_KEY_FILE"
SERVER_URL_ENV = "GITHUB_SERVER_URL"
DEFAULT_SERVER_URL = "https://github.com"
JWT_LIFETIME = 540
"""Seconds; GitHub refuses an App JWT that expires more than ten minutes ahead."""
CLOCK_SKEW = 60
"""The JWT is dated a minute back: GitHub refuses one issued in its future."""
EARLY_REFRESH = 60
"""Seconds before its expiry an installation token is minted again."""
MAX_KEY_BYTES = 64 * 1024
NO_CREDENTIALS = (
    "no GitHub credentials: set GITHUB_TOKEN, or a GitHub App with "
    f"{APP_ID_ENV} and {APP_KEY_ENV} (see docs/github-app.md)"
)


class AppConfigError(gh.GitHubError):
    """The App's settings are unusable; `field` names the environment variable at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class GitHubApp:
    """An App's identity: the id that signs its JWTs and its private key (PEM text)."""

    app_id: str
    private_key: str = ""

    def __repr__(self) -> str:  # the key never lands in a log or a traceback
        return f"GitHubApp(app_id={self.app_id!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubApp | None:
        """The App configured in `env`, None without one; AppConfigError if half set or bad."""
        app_id = env.get(APP_ID_ENV, "").strip()
        key_file = env.get(APP_KEY_ENV, "").strip()
        if not app_id and not key_file:
            return None
        if not app_id:
            raise AppConfigError(APP_ID_ENV, f"missing (needed with {APP_KEY_ENV})")
        if not key_file:
            raise AppConfigError(APP_KEY_ENV, f"missing (needed with {APP_ID_ENV})")
        if len(app_id) > 100 or not app_id.replace(".", "").isalnum():
            raise AppConfigError(APP_ID_ENV, "an App id (digits) or client id (Iv1.…) expected")
        return cls(app_id, _read_key(Path(key_file)))

    def jwt(self, now: float | None = None) -> str:
        """A JWT that authenticates as the App (not as an installation) for ten minutes."""
        jwt = _pyjwt()
        issued = int(time.time() if now is None else now) - CLOCK_SKEW
        claims = {"iat": issued, "exp": issued + CLOCK_SKEW + JWT_LIFETIME, "iss": self.app_id}
        try:
            return str(jwt.encode(claims, self.private_key, algorithm="RS256"))
        except (ValueError, TypeError) as exc:  # not an RSA key after all
            raise AppConfigError(APP_KEY_ENV, f"cannot sign with this key: {exc}") from None


def _read_key(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise AppConfigError(APP_KEY_ENV, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_KEY_BYTES:
        raise AppConfigError(APP_KEY_ENV, f"{path} is larger than a private key can be")
    text = raw.decode("ascii", "replace")
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        raise AppConfigError(APP_KEY_ENV, f"{path} is not a PEM private key")
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError:
        _pyjwt()  # names the extra to install
        raise
    try:
        key = load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AppConfigError(APP_KEY_ENV, f"{path}: not a usable private key ({reason})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AppConfigError(APP_KEY_ENV, f"{path}: GitHub Apps sign with an RSA key")
    return text


def _pyjwt() -> Any:
    try:
        import jwt
    except ImportError:
        raise gh.GitHubError(
            "GitHub App authentication needs PyJWT: pip install 'reviewflow[github]'"
        ) from None
    return jwt


class InstallationTokens:
    """Installation tokens of one App, one per repository, cached until shortly before expiry."""

    def __init__(
        self,
        app: GitHubApp,
        api_url: str = gh.DEFAULT_API_URL,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float | None = None,
    ) -> None:
        self.app = app
        self.api_url = api_url
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}

    def token(self, repo: str, *, refresh: bool = False) -> str:
        """A token for `repo` (owner/name): the cached one unless it expires soon or `refresh`."""
        repo = gh.validate_repo(repo)
        key = repo.lower()
        with self._lock:
            held = self._cache.get(key)
            if held and not refresh and held[1] - EARLY_REFRESH > self._clock():
                return held[0]
            token, expires = self._mint(repo)
            self._cache[key] = (token, expires)
            return token

    def _mint(self, repo: str) -> tuple[str, float]:
        app = gh.GitHubClient(self.app.jwt(self._clock()), self.api_url, timeout=self.timeout)
        try:
            doc, _ = app.request("GET", f"/repos/{repo}/installation")
        except gh.GitHubHTTPError as exc:
            if exc.status == 404:
                raise gh.GitHubError(
                    f"the GitHub App {self.app.app_id} is not installed on {repo}"
                ) from None
            raise
        installation = doc.get("id") if isinstance(doc, dict) else None
        if isinstance(installation, bool) or not isinstance(installation, int):
            raise gh.GitHubError(f"GitHub API: no installation id for {repo}")
        doc, _ = app.request(
            "POST",
            f"/app/installations/{installation}/access_tokens",
            {"repositories": [repo.split("/", 1)[1]]},
            idempotent=True,  # minting twice only makes a second token
        )
        token = doc.get("token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise gh.GitHubError(f"GitHub API: no installation token for {repo}")
        return token, _expiry(doc.get("expires_at"), self._clock())


def _expiry(value: Any, now: float) -> float:
    """`expires_at` as a timestamp; an hour (GitHub's lifetime) when it cannot be read."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now + 3600


_apps: dict[tuple[str, str], InstallationTokens] = {}
_apps_lock = threading.Lock()


def client_for(
    repo: str,
    api_url: str = gh.DEFAULT_API_URL,
    *,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> gh.GitHubClient:
    """A client acting on `repo`: with `token`, else GITHUB_TOKEN, else the App's installation.

    An App client mints a new installation token once when GitHub answers 401 (a token revoked
    or expired before its announced time) and repeats the request with it.
    """
    env = os.environ if env is None else env
    token = (token or env.get("GITHUB_TOKEN", "")).strip()
    if token:
        return gh.GitHubClient(token, api_url, timeout=timeout)
    app = GitHubApp.from_env(env)
    if app is None:
        raise gh.GitHubError(NO_CREDENTIALS)
    tokens = _tokens(app, api_url, timeout)
    return gh.GitHubClient(
        tokens.token(repo),
        api_url,
        timeout=timeout,
        refresh=lambda: tokens.token(repo, refresh=True),
    )


def _tokens(app: GitHubApp, api_url: str, timeout: float | None) -> InstallationTokens:
    with _apps_lock:
        key = (app.app_id, api_url)
        held = _apps.get(key)
        if held is None or held.app != app:
            held = _apps[key] = InstallationTokens(app, api_url, timeout=timeout)
        return held


def have_credentials(env: Mapping[str, str] | None = None) -> bool:
    """Whether a token or a complete App configuration is in `env` (not whether they work)."""
    env = os.environ if env is None else env
    if env.get("GITHUB_TOKEN", "").strip():
        return True
    return bool(env.get(APP_ID_ENV, "").strip() and env.get(APP_KEY_ENV, "").strip())


def server_url(env: Mapping[str, str] | None = None) -> str:
    """The GitHub server git fetches from (GITHUB_SERVER_URL, as in Actions), no trailing /."""
    env = os.environ if env is None else env
    url = (env.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL).rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:  # never echo them
        raise AppConfigError(SERVER_URL_ENV, "no user or password in the URL: http(s)://host")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AppConfigError(SERVER_URL_ENV, f"{url!r} is not an http(s)://host URL")
    return url


def fetch_env(reviewflow: list[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `git fetch` that authenticates through `reviewflow github credential`.

    Only configuration: the helper command and the server it is scoped to. git runs a helper
    value starting with `!` through the shell, so the command is built from this process's own
    argv (never from a request) and quoted.
    """
    helper = "!" + shlex.join([*reviewflow, "github", "credential"])
    scope = server_url(env)
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": f"credential.{scope}.helper",
        "GIT_CONFIG_VALUE_0": helper,
        "GIT_CONFIG_KEY_1": f"credential.{scope}.useHttpPath",
        "GIT_CONFIG_VALUE_1": "true",
    }


def credential(
    operation: str,
    stdin: IO[str],
    stdout: IO[str],
    *,
    env: Mapping[str, str] | None = None,
    api_url: str | None = None,
) -> int:
    """git's credential helper protocol: answer `get` for the GitHub server, ignore the rest.

    Errors are told on stderr in one line and answered with nothing: git then fails the fetch
    as it would without a helper (GIT_TERMINAL_PROMPT=0 keeps it from prompting).
    """
    env = os.environ if env is None else env
    asked: dict[str, str] = {}
    for line in stdin:
        line = line.rstrip("\n")
        if not line:
            break
        key, _, value = line.partition("=")
        asked[key] = value
    if operation != "get":
        return 0
    try:
        scope = urllib.parse.urlsplit(server_url(env))
    except AppConfigError as exc:
        print(f"reviewflow github credential: {exc}", file=sys.stderr)
        return 0
    if asked.get("protocol") != scope.scheme or asked.get("host") != scope.netloc:
        return 0  # another server: not ours to answer
    path = asked.get("path", "").strip("/").removesuffix(".git")
    prefix = scope.path.strip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) + 1 :]
    repo = "/".join(path.split("/")[-2:])
    try:
        token = env.get("GITHUB_TOKEN", "").strip()
        if not token:
            api = api_url or env.get("GITHUB_API_URL") or gh.DEFAULT_API_URL
            app = GitHubApp.from_env(env)
            if app is None:
                return 0
            token = _tokens(app, api, None).token(repo)
    except (gh.GitHubError, ValueError) as exc:  # ValueError: no repository path, bad API URL
        print(f"reviewflow github credential: {exc}", file=sys.stderr)
        return 0
    stdout.write(f"username=x-access-token\npassword={token}\n")
    stdout.flush()
    return 0
