"""`reviewflow serve` (cli/server.py) refuses to start without what it needs (in-process, before
listening)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from reviewflow.cli import app


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in ("REVIEWFLOW_API_TOKENS", "REVIEWFLOW_WEBHOOK_SECRET", "REVIEWFLOW_DB"):
        monkeypatch.delenv(name, raising=False)
    yield
    # `serve` configures structlog for the stderr CliRunner gave it (closed afterwards).
    structlog.reset_defaults()


def serve(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", "--db", "rf.db", *args], env=env)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.output


def test_no_token_no_server() -> None:
    code, output = serve()
    assert code == 2 and "no API tokens" in output
    code, output = serve(env={"REVIEWFLOW_API_TOKENS": " , ro: ,"})
    assert code == 2 and "no API tokens" in output


def test_a_missing_tokens_file_is_bad_input(tmp_path: Path) -> None:
    code, output = serve("--tokens-file", str(tmp_path / "nope"))
    assert code == 2 and "--tokens-file" in output


def test_an_unknown_webhook_template_is_bad_input() -> None:
    code, output = serve("--webhook-template", "nope", env={"REVIEWFLOW_API_TOKENS": "t"})
    assert code == 2 and "--webhook-template" in output
    assert not Path("rf.db").exists()  # refused before opening the database


def test_a_bad_log_level_is_bad_input() -> None:
    code, output = serve("--log-level", "loud", env={"REVIEWFLOW_API_TOKENS": "t"})
    assert code == 2 and "--log-level" in output


def test_a_bad_database_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    result = CliRunner().invoke(
        app, ["serve", "--db", str(tmp_path / "dir.db")], env={"REVIEWFLOW_API_TOKENS": "t"}
    )
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--public-url", "ftp://x"], {}, "--public-url"),
        (["--public-url", "https://u:p@x"], {}, "--public-url"),
        (["--github-post-back"], {"GITHUB_TOKEN": ""}, "no GitHub credentials"),
        (
            ["--github-post-back"],
            {
                "GITHUB_TOKEN": "",
                "REVIEWFLOW_GITHUB_APP_ID": "1",
                "REVIEWFLOW_GITHUB_APP_KEY_FILE": "/no/such.pem",
            },
            "REVIEWFLOW_GITHUB_APP_KEY_FILE: cannot read",
        ),
    ],
)
def test_bad_github_settings_are_bad_input(
    args: list[str], env: dict[str, str], message: str
) -> None:
    code, output = serve(*args, env={"REVIEWFLOW_API_TOKENS": "t", **env})
    assert code == 2, output
    assert message in output
    assert len(output.strip().splitlines()) == 1
    assert not Path("rf.db").exists()  # refused before opening the database
