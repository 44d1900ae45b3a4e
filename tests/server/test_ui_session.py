"""Dashboard sessions: login and logout only from a page of this server."""

from __future__ import annotations

from apihelpers import RW


def test_a_cross_site_logout_is_refused_and_a_same_site_one_ends_the_session(client) -> None:
    login = client.post("/ui/login", json={"token": RW})
    assert login.status_code == 204, login.text
    assert client.get("/ui/api/runs/none/graph").status_code == 404  # logged in: reads
    evil = client.post("/ui/logout", headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert client.get("/ui/api/runs/none/graph").status_code == 404  # still logged in
    assert client.post("/ui/logout").status_code == 204
    assert client.get("/ui/api/runs/none/graph").status_code == 401
