"""The HTTP layer under botocore: response bodies have a size bound; no endpoint fills memory."""

from __future__ import annotations

import ssl
import threading
from typing import Any

import aiohttp
from aiobotocore.httpsession import AIOHTTPSession

# Far above any real IAM, STS or Organizations page (a 1,000-service ACTION_LEVEL page is a few
# MB); far below what would hurt. Object bodies read as streams (S3) are not bounded here.
MAX_RESPONSE_BYTES = 64 << 20


class ResponseTooLargeError(Exception):
    """The endpoint sent more than MAX_RESPONSE_BYTES: not an answer AWS gives."""


class BoundedResponse(aiohttp.ClientResponse):
    """aiohttp's response whose whole-body `read()` stops at MAX_RESPONSE_BYTES."""

    async def read(self) -> bytes:
        if self._body is None:
            body = bytearray()
            try:
                while chunk := await self.content.readany():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        limit = MAX_RESPONSE_BYTES >> 20
                        raise ResponseTooLargeError(f"a response body over {limit} MiB")
            except BaseException:
                self.close()
                raise
            self._body = bytes(body)
            # As aiohttp's own read(): hand the connection back before the body is used.
            protocol = self._connection and self._connection.protocol
            if protocol is None or not protocol.upgraded:
                await self._wait_released()
        return self._body


# TLS contexts by (verify, client certificate, key): loading a CA bundle costs ~40 ms of CPU, and
# an organisation sweep opens clients for every account. A context is not changed once built.
_contexts: dict[tuple[Any, ...], tuple[ssl.SSLContext, None]] = {}
_contexts_lock = threading.Lock()


class BoundedHttpSession(AIOHTTPSession):
    """aiobotocore's aiohttp session: BoundedResponse for every response, TLS contexts shared."""

    def _build_ssl_contexts(self, proxy_url: Any) -> tuple[ssl.SSLContext, Any]:
        if proxy_url:  # a proxy's context depends on its settings too: built per session
            built: tuple[ssl.SSLContext, Any] = super()._build_ssl_contexts(proxy_url)  # type: ignore[misc]
            return built
        state = vars(self)  # aiobotocore's own settings of this session (not in its stubs)
        key = (state["_verify"], state["_cert_file"], state["_key_file"])
        # aiobotocore builds contexts in worker threads; accounts that start together wait for
        # one build rather than each loading the bundle.
        with _contexts_lock:
            if key not in _contexts:
                _contexts[key] = super()._build_ssl_contexts(None)  # type: ignore[misc]
            return _contexts[key]

    async def _get_session(self, proxy_url: Any) -> aiohttp.ClientSession:
        session: aiohttp.ClientSession = await super()._get_session(proxy_url)  # type: ignore[misc]
        session._response_class = BoundedResponse  # no public hook: aiobotocore builds it
        return session
