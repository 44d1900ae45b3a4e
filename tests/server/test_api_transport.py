"""Requests that end badly at the transport: a client gone mid-body is no server error, and a
request the HTTP parser refuses (a bad Content-Length) gets the documented JSON error."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from apihelpers import RW, AppFactory
from test_serve_process import Server, server  # noqa: F401  (the real-process fixture)


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


def test_a_bad_content_length_gets_the_json_error(server: Server) -> None:  # noqa: F811
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


def test_a_client_gone_mid_body_leaves_no_traceback(server: Server) -> None:  # noqa: F811
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer serve-token\r\n"
            b"Content-Type: application/yaml\r\nContent-Length: 5000\r\n\r\nname: wf\n"
        )
    assert server.http.get("/health").status_code == 200
    server.stop()
    output = server.output()
    assert "Traceback" not in output and "Exception in ASGI" not in output, output
