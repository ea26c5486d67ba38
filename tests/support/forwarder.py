"""A TCP forwarder on 127.0.0.1 that counts the connections clients open through it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Forwarded:
    """The forwarder's endpoint, and how many connections it accepted so far."""

    endpoint: str
    _accepted: list[int] = field(default_factory=lambda: [0])

    @property
    def connections(self) -> int:
        return self._accepted[0]


def _pump(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextmanager
def counting_forwarder(upstream: str) -> Iterator[Forwarded]:
    """Bytes both ways between each client connection and a new one to `upstream`."""
    url = urlsplit(upstream)
    target = (url.hostname or "127.0.0.1", url.port or 80)
    listener = socket.create_server(("127.0.0.1", 0))
    forwarded = Forwarded(f"http://127.0.0.1:{listener.getsockname()[1]}")
    opened: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            forwarded._accepted[0] += 1
            server = socket.create_connection(target)
            opened.extend((client, server))
            for pair in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=pair, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield forwarded
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        listener.close()
        for sock in opened:
            with suppress(OSError):
                sock.close()
        thread.join(timeout=5)
