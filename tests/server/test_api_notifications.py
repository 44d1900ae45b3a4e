"""The server's notification targets (`serve --notifications`, `--public-url`): added to every
run it creates, small bodies and big ones (stored by a child process), and delivered by the
server's own deliverer with a link to the run's page."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from apihelpers import AppFactory, sh, workflow

from reviewflow.notify.targets import NotificationTarget

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from notify_receiver import Receiver  # noqa: E402

PUBLIC = "https://reviewflow.example/"


@pytest.mark.parametrize("big", [False, True], ids=["small-body", "big-body"])
def test_server_targets_reach_every_run_with_its_page(make_client: AppFactory, big: bool) -> None:
    with Receiver() as receiver:
        target = NotificationTarget(kind="webhook", url=receiver.url, events=["run_finished"])
        client = make_client(notifications=[target], public_url=PUBLIC)
        doc = workflow({"a": sh("true")}, description="x" * (70_000 if big else 10))
        run_id = client.submit(doc)
        assert client.wait(run_id)["state"] == "succeeded"
        assert receiver.wait_for(lambda reqs: len(reqs) == 1)
        body = receiver.requests[0].json()
    assert (body["event"], body["run_id"], body["outcome"]) == ("run_finished", run_id, "succeeded")
    assert body["url"] == f"https://reviewflow.example/ui/runs/{run_id}"
