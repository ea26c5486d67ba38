"""The emulator keeps a client's connection open between calls, as AWS endpoints do."""

from __future__ import annotations

import http.client
import logging
from urllib.parse import urlsplit

from collector.emulator import Emulator

# An unsigned ListUsers: the emulator, like moto, does not check signatures.
LIST_USERS = "Action=ListUsers&Version=2010-05-08&MaxItems=1"
HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/"
    "aws4_request, SignedHeaders=host, Signature=0",
}


def test_calls_share_one_connection(emulator: Emulator) -> None:
    """Three calls over one socket, each answered in full, none closing the connection.

    A server that closes after every answer costs the client a TCP connect per call, which
    is most of what a CPU-per-call benchmark would then measure.
    """
    address = urlsplit(emulator.endpoint)
    assert address.hostname == "127.0.0.1" and address.port is not None
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        sockets = []
        for _ in range(3):
            connection.request("POST", "/", body=LIST_USERS, headers=HEADERS)
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, body
            assert b"<ListUsersResult>" in body
            assert response.getheader("Connection", "").lower() != "close"
            assert not response.will_close
            sockets.append(connection.sock)
        assert sockets[0] is not None
        assert sockets == [sockets[0]] * 3
    finally:
        connection.close()


def test_busy_threads_are_not_logged(emulator: Emulator) -> None:
    """A request waiting for a free thread is routine under a sweep: no warning per request."""
    assert not logging.getLogger("waitress.queue").isEnabledFor(logging.WARNING)
    assert logging.getLogger("waitress.queue").isEnabledFor(logging.ERROR)
