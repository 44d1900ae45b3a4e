"""The API's OpenAPI document (its models and error responses: reviewflow.server.schemas) tells
the truth: every operation documents its errors, all of one JSON shape, and real answers (about
a real run, in every state a client meets) conform to what it says of their status code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
from apihelpers import AUTH, RW, Client, sh, workflow

from reviewflow.server import create_app
from reviewflow.store import SQLiteStore


def test_the_document_describes_every_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "rf.db")
    try:
        doc = create_app(store, tokens=[RW]).openapi()
    finally:
        store.close()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if op.get("security"):
                assert {"401", "422"} <= codes, (method, path, codes)
            if method == "post" and op.get("security"):
                assert "403" in codes, (method, path)
            if "{run_id}" in path:
                assert "404" in codes, (method, path)
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")) and path not in ("/ready",):
                    schema_ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema_ref.endswith("/ErrorBody"), (method, path, code)
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def _validate(doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    """The response conforms to what the document says of its status code."""
    documented = doc["paths"][path][method]["responses"][str(response.status_code)]
    content = documented.get("content", {})
    kind = response.headers["content-type"].split(";")[0]
    assert kind in content, (path, response.status_code, kind, list(content))
    if kind == "application/json":
        schema = {**content[kind]["schema"], "components": doc["components"]}
        jsonschema.validate(response.json(), schema)


def test_real_answers_match_the_document(client: Client) -> None:
    """Fuzzing rarely reaches an existing run: check the answers about real ones too."""
    doc = client.get("/openapi.json").json()
    run_id = client.submit(
        workflow(
            {
                "build": sh("echo built"),
                "gate": {"type": "approval", "needs": ["build"]},
                "ship": {"type": "python", "call": "server_tasks:not_json", "needs": ["gate"]},
            }
        ),
        meta=["pr=1"],
    )
    client.wait(run_id, lambda d: d["tasks"][1]["state"] == "running")
    paused = client.post(f"/runs/{run_id}/pause", headers=AUTH)
    _validate(doc, "/runs/{run_id}/pause", "post", paused)
    _validate(
        doc, "/runs/{run_id}/resume", "post", client.post(f"/runs/{run_id}/resume", headers=AUTH)
    )
    approved = client.post(f"/runs/{run_id}/tasks/gate/approve", headers=AUTH)
    _validate(doc, "/runs/{run_id}/tasks/{task}/approve", "post", approved)
    client.wait(run_id)
    for path, url in [
        ("/runs", "/runs"),
        ("/runs/{run_id}", f"/runs/{run_id}"),
        ("/runs/{run_id}/events", f"/runs/{run_id}/events"),
        ("/runs/{run_id}/graph", f"/runs/{run_id}/graph"),
        ("/runs/{run_id}/tasks/{task}/log", f"/runs/{run_id}/tasks/build/log"),
        ("/runs/{run_id}/events/stream", f"/runs/{run_id}/events/stream"),
        ("/health", "/health"),
        ("/ready", "/ready"),
        ("/metrics", "/metrics"),
    ]:
        response = client.get(url, headers=AUTH)
        assert response.status_code == 200, (url, response.text)
        _validate(doc, path, "get", response)
    for url, method, path in [
        (f"/runs/{run_id}/cancel", "post", "/runs/{run_id}/cancel"),
        ("/runs/nope", "get", "/runs/{run_id}"),
        (f"/runs/{run_id}/tasks/gate/reject", "post", "/runs/{run_id}/tasks/{task}/reject"),
    ]:
        _validate(doc, path, method, client.request(method, url, headers=AUTH))
    created = client.post("/runs", json=workflow({"a": sh("true")}), headers=AUTH)
    _validate(doc, "/runs", "post", created)
