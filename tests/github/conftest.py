"""Fixtures of the GitHub tests: `fake_github`, a fake REST API on 127.0.0.1 (fakegithub.py) that
checks every request against GitHub's OpenAPI description."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import reviewflow.github as gh

GITHUB_TESTS = Path(__file__).resolve().parent
if str(GITHUB_TESTS) not in sys.path:
    sys.path.insert(0, str(GITHUB_TESTS))  # fakegithub

from fakegithub import TOKEN, FakeGitHub  # noqa: E402


@pytest.fixture
def fake_github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setattr(gh, "RETRY_DELAYS", (0.0, 0.0))  # backoff without slowing the tests
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        fake.server.shutdown()
        fake.server.server_close()
        fake.thread.join(timeout=10)
    # Every request matched GitHub's OpenAPI description (a test that sends a bad one on
    # purpose empties the list after looking at it).
    assert fake.violations == []
