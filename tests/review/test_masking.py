"""What counts as a secret value (how a text loses it: test_findings.py)."""

from __future__ import annotations

import pytest

from reviewflow.review.masking import private_key_lines, python_secrets, secret_name

VALUE = "Zr8vQm2L" + "xT9wKp4Nq"


@pytest.mark.parametrize(
    "name", ["password", "DB_PASSWORD", "db_pwd", "apiKey", "AWS_SECRET_ACCESS_KEY", "auth_token"]
)
def test_credential_names(name: str) -> None:
    assert secret_name(name)


@pytest.mark.parametrize("name", ["monkey", "keyboard", "sort_key", "passenger", "tokenizer"])
def test_names_that_only_contain_a_credential_word_are_not_credentials(name: str) -> None:
    assert not secret_name(name)


def test_the_places_bandit_flags_in_python() -> None:
    source = f"""
password = "{VALUE}1"
conf["api_key"] = "{VALUE}2"
connect(user="u", passwd="{VALUE}3")
def f(a, token="{VALUE}4", *, secret: str = "{VALUE}5"): ...
if password == "{VALUE}6": ...
settings = {{"db_password": "{VALUE}7"}}
sort_key = "created_at"
password = ""
password = "${{PASSWORD}}"
"""
    assert python_secrets(source) == {f"{VALUE}{n}" for n in range(1, 8)}


def test_a_private_key_block_gives_its_body_lines() -> None:
    text = "x\n-----BEGIN OPENSSH PRIVATE" + " KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\n"
    text += "Proc-Type: 4,ENCRYPTED\n-----END OPENSSH PRIVATE" + " KEY-----\n"
    assert private_key_lines(text) == {"AAAAB3NzaC1yc2EAAAADAQABAAABAQ"}


def test_what_a_keyword_heuristic_picks_up_is_not_masked(tmp_path) -> None:
    """`secrets: {when: always}` in a template is no credential: masking `always` everywhere
    would garble every report; an AWS key next to it is masked."""
    from reviewflow.review.masking import file_secrets

    key = "AKIA" + "Q7XK2M9PLR4TZW8N"
    (tmp_path / "t.yaml").write_text(
        f"checks:\n  secrets: {{when: always}}\naws_key: {key}\npassword: DB_PASSWORD\n",
        encoding="utf-8",
    )
    assert file_secrets(tmp_path, "t.yaml") == {key}


def test_only_lines_that_could_hold_a_secret_are_scanned() -> None:
    from reviewflow.review.masking import candidate

    # pragma: allowlist nextline secret
    assert candidate('API_TOKEN = "x"') and candidate("url = 'https://u:pw@host/db'")
    assert candidate("value = 'k9Zq2XvB7mWp4Lr8Ts1Y'")
    assert not candidate("def changed_line_coverage(result):")
    assert not candidate("    return sum(end - start + 1 for start, end in self.lines)")
