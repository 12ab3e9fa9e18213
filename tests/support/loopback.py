"""An ``http.server`` on loopback in a thread of the test process, for the fake LMSs.

A ``python -m grader`` subprocess reaches it as well as the test itself. The fake's
``Route`` answers each request with (status, payload, headers): a str payload is sent
as text, anything else as JSON; a negative status closes the connection unanswered.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]  # url-encoded forms only (a field's first value)
    fields: dict[str, list[str]]  # every value of each url-encoded field (``key[]``)
    headers: dict[str, str]
    body: bytes

    def multipart(self) -> list[tuple[str, bytes]]:
        """The fields of a multipart/form-data body, in order: (name, content)."""
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        fields = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields.append((str(name), part.get_payload(decode=True) or b""))
        return fields


Answer = tuple[int, Any, dict[str, str]]
Route = Callable[[Request], Answer]
Decorate = Callable[[Request, Answer], dict[str, str]]
"""Headers every answer carries (Canvas's X-Rate-Limit-Remaining), given the answer."""


def _handler(route: Route, decorate: Decorate | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            kind = self.headers.get("Content-Type", "")
            form = {} if kind.startswith("multipart/") else parse_qs(body.decode(errors="replace"))
            # a multipart body (a file upload) stays in ``body``
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k: v[0] for k, v in form.items()},
                form,
                dict(self.headers.items()),
                body,
            )
            status, payload, headers = answer = route(request)
            if status < 0:
                self.close_connection = True
                return
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            kind = "text/plain" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            extra = decorate(request, answer) if decorate else {}
            for name, value in (extra | headers).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815 - http.server dispatches on these names

    return Handler


@contextmanager
def serve_http(route: Route, decorate: Decorate | None = None) -> Iterator[str]:
    """Serve ``route`` on a free loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(route, decorate))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
