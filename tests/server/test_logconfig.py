"""Every line `reviewflow serve` writes to stderr is one JSON object (reviewflow.server.logconfig):
its own log lines and uvicorn's, access lines with their parts as fields, and a traceback as a
field of its line rather than twenty lines of text a log collector would split."""

from __future__ import annotations

import json
import logging
import logging.config
import signal
import socket
import sys
from pathlib import Path

import pytest
from apihelpers import sh
from serveproc import Server

from reviewflow.server.logconfig import uvicorn_log_config


def _formatter() -> logging.Formatter:
    """The formatter `serve` gives uvicorn's handlers, built as dictConfig builds it."""
    config = uvicorn_log_config("info")
    spec = dict(config["formatters"]["json"])
    return logging.config.DictConfigurator(config).configure_formatter(spec)


def test_an_access_line_is_one_json_object_with_its_parts_as_fields() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/runs?state=failed", "1.1", 200),
        None,
    )
    doc = json.loads(_formatter().format(record))
    assert {
        k: doc[k] for k in ("event", "logger", "level", "client", "method", "path", "status")
    } == {
        "event": "http.request",
        "logger": "uvicorn.access",
        "level": "info",
        "client": "127.0.0.1:5000",
        "method": "GET",
        "path": "/runs?state=failed",
        "status": 200,
    }


def test_a_traceback_is_a_field_of_its_one_line() -> None:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (), exc_info
    )
    line = _formatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["event"] == "Exception in ASGI application" and doc["level"] == "error"
    assert doc["exception"].startswith("Traceback") and "ZeroDivisionError" in doc["exception"]


@pytest.mark.parametrize("log_format", [[], ["--log-format", "json"]], ids=["auto", "json"])
def test_every_log_line_of_the_server_is_json(tmp_path: Path, log_format: list[str]) -> None:
    """stderr is not a terminal here: `auto` means JSON, and uvicorn's lines are JSON too."""
    server = Server(tmp_path, *log_format)
    try:
        assert server.http.get("/health").status_code == 200
        run_id = server.submit({"a": sh("true")})
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            while sock.recv(65536):
                pass
        assert server.stop() in (0, -signal.SIGTERM)
    finally:
        server.stop()
        output = server.output()
        server.log.close()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    events = [doc["event"] for doc in lines]
    assert "server.listen" in events and "server.stop" in events
    assert any(doc.get("logger") == "uvicorn.error" for doc in lines)  # its start-up lines
    health = {(d["event"], d["method"], d["status"]) for d in lines if d.get("path") == "/health"}
    assert health == {("http.request", "GET", 200)}
    assert any(doc.get("path") == "/runs" and doc.get("status") == 201 for doc in lines)
    assert any(doc["event"] == "Invalid HTTP request received." for doc in lines)
    assert run_id
