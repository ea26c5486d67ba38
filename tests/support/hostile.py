"""Hostile endpoints for tests: a reverse proxy that breaks chosen operations, and bad servers."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (operation, request body) -> None to forward, or (status, body) to answer instead, or
# (status, body, length) to claim `length` bytes, send `body` and close: a cut connection.
Rule = Callable[[str, bytes], tuple[int, bytes] | tuple[int, bytes, int] | None]


def _operation(body: bytes) -> str:
    return urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 (a free port) in a thread; yields the endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def proxy(upstream: str, rule: Rule) -> Iterator[str]:
    """Forward every request to `upstream` unless `rule` answers it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            answer = rule(_operation(body), body)
            if answer is None:
                request = urllib.request.Request(  # noqa: S310 - upstream is the emulator's URL
                    upstream + self.path, data=body, method="POST",
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )  # fmt: skip
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                        answer = (response.status, response.read())
                except urllib.error.HTTPError as error:
                    answer = (error.code, error.read())
            status, data, *claimed = answer
            self.send_response(status)
            self.send_header("content-type", "text/xml")
            self.send_header("content-length", str(claimed[0] if claimed else len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = bool(claimed)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url


def answering(
    status: int, body: bytes, *, drip: float = 0.0, asked: threading.Event | None = None
) -> type[BaseHTTPRequestHandler]:
    """A server that answers every request alike; with `drip`, one byte every `drip` seconds.

    `asked` is set when the first request arrives.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            if asked is not None:
                asked.set()
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            try:
                if not drip:
                    self.wfile.write(body)
                    return
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(drip)
            except OSError:
                pass  # the client gave up: that is the point

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def endless() -> type[BaseHTTPRequestHandler]:
    """A server whose 200 answer never ends (no content-length, bytes forever)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.end_headers()
            chunk = b"<a>" * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    return Handler
