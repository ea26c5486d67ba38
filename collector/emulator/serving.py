"""Serve a WSGI app on 127.0.0.1 from a thread with HTTP/1.1 keep-alive (waitress) until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress import wasyncore
from waitress.server import TcpWSGIServer, create_server

HOST = "127.0.0.1"
# Request threads: the app never sleeps, so a few cover two cores; connections are not
# threads (waitress multiplexes them), so a client's whole pool stays open between calls.
THREADS = 8
CONNECTION_LIMIT = 4096  # benchmark peers and org sweeps hold hundreds of connections
# How long the serving loop waits for a socket before it looks at the stop flag.
POLL_SECONDS = 0.05


def raw_uri(app: Any) -> Any:
    """`app` given the request target as sent, in RAW_URI, where moto reads S3 keys from.

    waitress puts it in REQUEST_URI only; without RAW_URI moto falls back to the decoded
    PATH_INFO and decodes it again (`%2520` -> ` `), and splits it at a decoded `?`.
    """

    def with_raw_uri(environ: dict[str, Any], start_response: Any) -> Any:
        environ.setdefault("RAW_URI", environ.get("REQUEST_URI", ""))
        return app(environ, start_response)

    return with_raw_uri


@contextmanager
def serving(app: Any, port: int, name: str) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:`port` (0 = a free port) and yield its endpoint URL."""
    # waitress warns of every request that waits for a free thread; under a sweep flat out
    # that is thousands of lines (3,137 in one org benchmark) saying the server is busy.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    sockets: dict[int, Any] = {}
    server = create_server(
        raw_uri(app),
        map=sockets,
        host=HOST,
        port=port,
        threads=THREADS,
        connection_limit=CONNECTION_LIMIT,
        ident="collector-emulator",
        # A client that drops its connection mid-response is routine under test.
        log_socket_errors=False,
    )
    if not isinstance(server, TcpWSGIServer):  # one host and port make a single TCP server
        raise TypeError(f"waitress made a {type(server).__name__} for one TCP address")
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            wasyncore.loop(timeout=POLL_SECONDS, use_poll=True, map=sockets, count=1)

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    try:
        _, port_text = server.getsockname()  # numeric, as waitress reports it
        yield f"http://{HOST}:{port_text}"
    finally:
        stopping.set()
        thread.join()
        server.task_dispatcher.shutdown()
        wasyncore.close_all(sockets, ignore_all=True)
