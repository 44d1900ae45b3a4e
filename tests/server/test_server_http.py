"""The API's HTTP plumbing (reviewflow.server.http): every error is `{"error", "field"}` with a
4xx, bodies over the limit are refused by Content-Length or as they arrive, a client gone
mid-body is no server error, a request the HTTP parser refuses gets the same JSON error, and
values JSON cannot carry come back as null."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

from apihelpers import AUTH, RW, YAML, AppFactory, Client, workflow
from serveproc import AUTH as SERVE_AUTH
from serveproc import Server


def test_a_client_gone_mid_body_is_answered_without_an_error(make_client: AppFactory) -> None:
    app = make_client(execute=False).app
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/runs",
        "raw_path": b"/runs",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {RW}".encode()),
            (b"content-type", b"application/yaml"),
            (b"content-length", b"1000"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    incoming = [
        {"type": "http.request", "body": b"name: wf\ntasks:\n", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # raised ClientDisconnect (a logged 500) before
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["field"] == "body"


def _raw(srv: Server, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_bad_content_length_gets_the_json_error(server: Server) -> None:
    answer = _raw(
        server,
        b"POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 12abc\r\n\r\n{}",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"error": "bad Content-Length header", "field": "Content-Length"}
    garbage = _raw(server, b"NOT HTTP AT ALL\r\n\r\n")
    head, _, body = garbage.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), garbage
    doc = json.loads(body)
    assert doc["field"] is None and doc["error"].startswith("invalid HTTP request")
    assert server.http.get("/health").status_code == 200


def test_a_client_gone_mid_body_leaves_no_traceback(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer serve-token\r\n"
            b"Content-Type: application/yaml\r\nContent-Length: 5000\r\n\r\nname: wf\n"
        )
    assert server.http.get("/health").status_code == 200
    server.stop()
    output = server.output()
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


def test_a_chunked_body_over_the_limit_is_refused(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "wf", "tasks": {"a": {"run": ["true"]}}, "description": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    resp = server.http.post(
        "/runs", content=chunks(), headers={**SERVE_AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["field"] == "body"
    assert server.http.get("/runs", headers=SERVE_AUTH).json()["runs"] == []


# ------------------------------------------------------------ in-process: body limit, errors


def test_a_body_over_the_limit_is_413_by_content_length(make_client: AppFactory) -> None:
    client = make_client(execute=False, max_body=1000)
    big = "name: wf\ntasks: {a: {run: [true]}}\n" + "#" * 2000 + "\n"
    resp = client.post("/runs", content=big, headers=YAML)
    assert resp.status_code == 413
    assert resp.json() == {"error": "request body larger than 1000 bytes", "field": "body"}
    # also before authentication, and on any route
    assert client.post("/runs", content=big).status_code == 413
    assert client.post("/webhooks/github", content=big).status_code == 413
    small = client.post("/runs", content=big[:900], headers=YAML)
    assert small.status_code == 201, small.text
    assert client.get("/runs", headers=AUTH).json()["runs"][0]["run_id"]


def test_a_chunked_body_over_the_limit_is_413_while_reading(make_client: AppFactory) -> None:
    client = make_client(execute=False, max_body=1000)

    def chunks(total: int) -> Iterator[bytes]:
        yield b"name: wf\ntasks: {a: {run: [true]}}\n"
        for _ in range(total // 100):
            yield b"#" * 99 + b"\n"

    resp = client.post("/runs", content=chunks(3000), headers=YAML)
    assert resp.status_code == 413, resp.text
    assert resp.json()["field"] == "body"
    resp = client.post(
        "/runs/r1/tasks/a/approve",
        content=chunks(3000),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status_code == 413, resp.text
    resp = client.post("/runs", content=chunks(500), headers=YAML)
    assert resp.status_code == 201, resp.text


def test_unknown_routes_and_methods_answer_json(idle: Client) -> None:
    resp = idle.get("/nope", headers=AUTH)
    assert resp.status_code == 404 and resp.json() == {"error": "Not Found", "field": None}
    resp = idle.delete("/runs", headers=AUTH)
    assert resp.status_code == 405 and resp.json()["error"] == "Method Not Allowed"


def test_a_bad_content_length_is_400(idle: Client) -> None:
    resp = idle.post("/runs", content=b"x", headers={**YAML, "Content-Length": "abc"})
    assert resp.status_code == 400 and resp.json()["field"] == "Content-Length"


def test_results_json_cannot_carry_come_back_as_null(client: Client) -> None:
    run_id = client.submit(workflow({"a": {"type": "python", "call": "server_tasks:not_json"}}))
    doc = client.wait(run_id)
    assert doc["state"] == "succeeded", doc
    assert doc["tasks"][0]["result"] == {"nan": None, "inf": None, "ok": 1.5}
