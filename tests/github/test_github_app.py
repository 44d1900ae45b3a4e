"""GitHub App authentication and git's credential helper, against the fake GitHub (every request
checked against GitHub's OpenAPI description) and a private git server (git http-backend behind
Basic auth) on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fakegithub import REPO, FakeGitHub
from githttp import PrivateGitServer

import reviewflow.github as gh
import reviewflow.github_app as ga


def _pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def app_env(
    fake_github: FakeGitHub,
    rsa_key: rsa.RSAPrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The App configured in the environment instead of GITHUB_TOKEN."""
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(_pem(rsa_key))
    fake_github.app_public_key = rsa_key.public_key()
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv(ga.APP_ID_ENV, fake_github.app_id)
    monkeypatch.setenv(ga.APP_KEY_ENV, str(key_file))
    monkeypatch.setattr(ga, "_apps", {})  # no token cached by an earlier test
    return dict(os.environ)


def test_an_app_mints_a_repository_token_and_uses_it(
    fake_github: FakeGitHub, app_env: dict[str, str]
) -> None:
    client = ga.client_for(REPO, fake_github.url)
    fake_github.add_comment(7, "hello")
    assert client.find_comment(REPO, 7, "hello") is not None
    assert fake_github.tokens == ["ghs_installation0001"]
    mint = [r for r in fake_github.requests if r.path.endswith("/access_tokens")]
    assert mint[0].body == {"repositories": [REPO.split("/")[1]]}  # scoped to the one repository
    # The second client of the process reuses the cached token: no new JWT exchange.
    ga.client_for(REPO, fake_github.url).find_comment(REPO, 7, "hello")
    assert len(fake_github.tokens) == 1


def test_a_revoked_token_is_minted_again_on_401(
    fake_github: FakeGitHub, app_env: dict[str, str]
) -> None:
    client = ga.client_for(REPO, fake_github.url)
    fake_github.revoke_tokens()
    assert client.find_comment(REPO, 7, "nothing") is None  # answered after one refresh
    assert len(fake_github.tokens) == 2
    repo_calls = [r for r in fake_github.requests if "/issues/" in r.path]
    assert [r.headers["Authorization"] for r in repo_calls] == [
        "Bearer ghs_installation0001",
        "Bearer ghs_installation0002",
    ]


def test_an_expiring_token_is_replaced_before_it_expires(
    fake_github: FakeGitHub, app_env: dict[str, str]
) -> None:
    fake_github.token_lifetime = 30  # less than the early-refresh margin
    app = ga.GitHubApp.from_env(app_env)
    assert app is not None
    tokens = ga.InstallationTokens(app, fake_github.url)
    assert tokens.token(REPO) != tokens.token(REPO)
    fake_github.token_lifetime = 3600
    third = tokens.token(REPO)
    assert tokens.token(REPO) == third


def test_an_app_not_installed_on_the_repository_says_so(
    fake_github: FakeGitHub, app_env: dict[str, str]
) -> None:
    fake_github.installed = False
    with pytest.raises(gh.GitHubError, match=f"not installed on {REPO}"):
        ga.client_for(REPO, fake_github.url)


def test_the_token_wins_over_the_app_and_nothing_is_an_error(tmp_path: Path) -> None:
    assert ga.client_for(REPO, env={"GITHUB_TOKEN": "t"})._token == "t"
    with pytest.raises(gh.GitHubError, match="set GITHUB_TOKEN, or a GitHub App"):
        ga.client_for(REPO, env={})
    assert not ga.have_credentials({})
    assert ga.have_credentials({"GITHUB_TOKEN": "x"})
    assert ga.have_credentials({ga.APP_ID_ENV: "1", ga.APP_KEY_ENV: str(tmp_path)})


@pytest.mark.parametrize(
    ("env", "field", "message"),
    [
        ({ga.APP_ID_ENV: "12"}, ga.APP_KEY_ENV, "missing"),
        ({ga.APP_KEY_ENV: "k.pem"}, ga.APP_ID_ENV, "missing"),
        ({ga.APP_ID_ENV: "1 2", ga.APP_KEY_ENV: "k.pem"}, ga.APP_ID_ENV, "App id"),
        ({ga.APP_ID_ENV: "12", ga.APP_KEY_ENV: "/no/such.pem"}, ga.APP_KEY_ENV, "cannot read"),
        ({ga.APP_ID_ENV: "12", ga.APP_KEY_ENV: "TEXT"}, ga.APP_KEY_ENV, "not a PEM"),
        ({ga.APP_ID_ENV: "12", ga.APP_KEY_ENV: "EC"}, ga.APP_KEY_ENV, "RSA key"),
        ({ga.APP_ID_ENV: "12", ga.APP_KEY_ENV: "BROKEN"}, ga.APP_KEY_ENV, "not a usable"),
    ],
)
def test_bad_app_settings_name_the_variable(
    env: dict[str, str], field: str, message: str, tmp_path: Path
) -> None:
    files = {
        "TEXT": b"hello",
        "EC": _pem(ec.generate_private_key(ec.SECP256R1())),
        "BROKEN": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    }
    for key, value in list(env.items()):
        if value in files:
            path = tmp_path / "key.pem"
            path.write_bytes(files[value])
            env[key] = str(path)
    with pytest.raises(ga.AppConfigError) as err:
        ga.GitHubApp.from_env(env)
    assert err.value.field == field
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_key_never_shows_in_a_repr(rsa_key: rsa.RSAPrivateKey) -> None:
    app = ga.GitHubApp("12", _pem(rsa_key).decode())
    assert "PRIVATE" not in repr(app) and "PRIVATE" not in str(app)


def _credential(operation: str, asked: str, env: dict[str, str]) -> str:
    out = io.StringIO()
    assert ga.credential(operation, io.StringIO(asked), out, env=env) == 0
    return out.getvalue()


def test_the_credential_helper_answers_only_its_server() -> None:
    env = {"GITHUB_TOKEN": "tok-1", "GITHUB_SERVER_URL": "https://github.example"}
    ours = "protocol=https\nhost=github.example\npath=o/r.git\n\n"
    assert _credential("get", ours, env) == "username=x-access-token\npassword=tok-1\n"
    assert _credential("get", ours.replace("github.example", "evil.example"), env) == ""
    assert _credential("get", ours.replace("https", "http"), env) == ""
    assert _credential("store", ours, env) == ""
    assert _credential("erase", ours, env) == ""
    assert _credential("get", ours, {"GITHUB_SERVER_URL": "https://github.example"}) == ""


def test_the_credential_helper_mints_the_apps_token_for_the_path(
    fake_github: FakeGitHub, app_env: dict[str, str]
) -> None:
    env = {**app_env, "GITHUB_SERVER_URL": "https://ghe.example/prefix"}
    asked = f"protocol=https\nhost=ghe.example\npath=prefix/{REPO}.git\n\n"
    assert _credential("get", asked, env) == (
        "username=x-access-token\npassword=ghs_installation0001\n"
    )


def test_the_credential_helper_answers_nothing_when_it_cannot_tell_the_repository(
    app_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # git asks without a path when useHttpPath is off (a helper configured by hand), and a
    # bad GITHUB_API_URL is the operator's: one line on stderr, no answer, never a traceback
    no_path = "protocol=https\nhost=github.com\n\n"
    assert _credential("get", no_path, app_env) == ""
    assert "bad repository" in capsys.readouterr().err
    bad_api = {**app_env, "GITHUB_API_URL": "ftp://api.example"}
    assert _credential("get", "protocol=https\nhost=github.com\npath=o/r.git\n\n", bad_api) == ""
    err = capsys.readouterr().err
    assert "bad API URL" in err and len(err.strip().splitlines()) == 1


def test_a_server_url_with_credentials_is_refused_without_showing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"GITHUB_TOKEN": "tok-1", "GITHUB_SERVER_URL": "https://x:hunter2@github.com"}
    assert _credential("get", "protocol=https\nhost=github.com\npath=o/r\n\n", env) == ""
    err = capsys.readouterr().err  # git copies it into the fetch task's log
    assert "GITHUB_SERVER_URL" in err and "hunter2" not in err


def _bare_repo(root: Path) -> str:
    work = root / "src"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "README.md").write_text("private\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    bare = root / "repos" / "octo-org" / "octo-repo.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return sha.strip()


def test_a_private_fetch_gets_the_token_through_the_helper_only(tmp_path: Path) -> None:
    token = "ghs_secretvalue_1234567890"  # pragma: allowlist secret
    sha = _bare_repo(tmp_path)
    with PrivateGitServer(tmp_path / "repos", token) as server:
        reviewflow = [sys.executable, "-m", "reviewflow"]
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "GIT_TERMINAL_PROMPT": "0",
            "GITHUB_SERVER_URL": server.url,
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        }
        fetch_env = ga.fetch_env(reviewflow, env)
        assert token not in repr(fetch_env)
        clone = tmp_path / "clone"
        subprocess.run(["git", "init", "-q", str(clone)], check=True)
        url = f"{server.url}/octo-org/octo-repo.git"
        argv = ["git", "-C", str(clone), "fetch", "-q", url, sha]
        # Without credentials the private repository is refused.
        refused = subprocess.run(argv, env={**env, **fetch_env}, capture_output=True)
        assert refused.returncode != 0
        assert not any(server.seen)
        # With the token in the fetching process's environment, the helper hands it to git.
        with_token = {**env, **fetch_env, "GITHUB_TOKEN": token}
        done = subprocess.run(argv, env=with_token, capture_output=True)
        assert done.returncode == 0, done.stderr
        assert subprocess.run(["git", "-C", str(clone), "cat-file", "-e", sha]).returncode == 0
        good = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
        assert good in server.seen
        # A helper scoped to another server gives this one nothing.
        sent = len([s for s in server.seen if s])
        other = {**env, "GITHUB_SERVER_URL": "https://github.com"}
        elsewhere = {**other, **ga.fetch_env(reviewflow, other), "GITHUB_TOKEN": token}
        assert subprocess.run(argv, env=elsewhere, capture_output=True).returncode != 0
        assert len([s for s in server.seen if s]) == sent
        assert all(s in ("", good) for s in server.seen)


def test_the_cli_posts_as_the_app(
    fake_github: FakeGitHub, app_env: dict[str, str], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from reviewflow.cli import app

    report = tmp_path / "report.md"
    report.write_text("# Review\n\nall good\n")
    args = ["github", "comment", "--repo", REPO, "--pr", "7", "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "created comment" in result.output
    assert fake_github.tokens == ["ghs_installation0001"]
    # A key file that went missing: one line naming the variable, exit 2, nothing sent.
    Path(app_env[ga.APP_KEY_ENV]).unlink()
    ga._apps.clear()
    sent = len(fake_github.requests)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"{ga.APP_KEY_ENV}: cannot read" in result.output
    assert len(fake_github.requests) == sent
