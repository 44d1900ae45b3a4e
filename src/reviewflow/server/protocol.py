"""The HTTP/1.1 protocol `reviewflow serve` runs: uvicorn's h11 protocol, except that a request
it cannot parse (a bad `Content-Length`, a malformed request line or header) is answered with
the API's JSON error — `{"error": ..., "field": ...}`, as docs/api.md promises for every error —
instead of uvicorn's plain-text line. Pass it as `uvicorn.Config(http=JsonErrorsProtocol)`."""

from __future__ import annotations

import json
import sys

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def bad_request_body(detail: str) -> bytes:
    """The JSON error for a request the HTTP parser refused, naming Content-Length when that
    header is at fault (h11 says so in its message)."""
    doc: dict[str, str | None]
    if "content-length" in detail.lower():
        doc = {"error": "bad Content-Length header", "field": "Content-Length"}
    else:
        doc = {"error": f"invalid HTTP request: {detail}", "field": None}
    return json.dumps(doc).encode()


class JsonErrorsProtocol(H11Protocol):
    """uvicorn's H11Protocol with JSON 400 answers for requests h11 cannot parse."""

    def send_400_response(self, msg: str) -> None:
        # Called from uvicorn's `except h11.RemoteProtocolError:`: the parser's reason.
        exc = sys.exception()
        body = bad_request_body(str(exc) if exc is not None and str(exc) else msg)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()
