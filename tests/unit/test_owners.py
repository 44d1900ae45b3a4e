"""Whether a run's owner may still execute it (`owners.owner_alive`): what `reviewflow status`,
`pause`, `resume` and the server decide a run's lease by. A run whose owner is gone must be
taken over at once rather than wait out its lease; a run whose owner may live must not be run
twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from reviewflow.owners import live_owners, owner_alive

NOW = 1_000_000.0
LEASED = NOW + 30
HOST = socket.gethostname()


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host, as another `reviewflow run` would be."""
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1) as proc:
        try:
            yield proc
        finally:
            proc.kill()


def test_a_live_process_of_this_host_holding_the_lease_may_run(
    child: subprocess.Popen[bytes],
) -> None:
    assert owner_alive(f"{HOST}:{child.pid}:abcd", LEASED, NOW)


def test_an_expired_lease_or_no_owner_frees_the_run_even_if_the_process_lives(
    child: subprocess.Popen[bytes],
) -> None:
    owner = f"{HOST}:{child.pid}:abcd"
    assert not owner_alive(owner, NOW - 1, NOW)
    assert not owner_alive(owner, None, NOW)
    assert not owner_alive(None, LEASED, NOW)
    assert not owner_alive("", LEASED, NOW)


def test_an_exited_process_frees_the_run_before_its_lease_ends() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: its pid names no process
    assert not owner_alive(f"{HOST}:{proc.pid}:abcd", LEASED, NOW)


def test_another_hosts_process_cannot_be_looked_at_so_its_lease_is_trusted() -> None:
    assert owner_alive("elsewhere.example:1:abcd", LEASED, NOW)
    assert not owner_alive("elsewhere.example:1:abcd", NOW - 1, NOW)


def test_an_owner_id_without_a_pid_is_trusted_until_its_lease_ends() -> None:
    assert owner_alive(f"{HOST}:not-a-pid:abcd", LEASED, NOW)
    assert owner_alive(HOST, LEASED, NOW)


def test_in_this_process_only_an_engine_still_registered_here_holds_the_run() -> None:
    """The pid is ours whatever the token: an engine that ended (or crashed) in this process
    left an owner id that no live engine holds."""
    mine = f"{HOST}:{os.getpid()}:test-owners"
    assert not owner_alive(mine, LEASED, NOW)
    live_owners.add(mine)
    try:
        assert owner_alive(mine, LEASED, NOW)
        assert not owner_alive(f"{HOST}:{os.getpid()}:another", LEASED, NOW)
    finally:
        live_owners.discard(mine)
