"""The HTTP layer under botocore: response bodies have a size bound; no endpoint fills memory."""

from __future__ import annotations

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


class BoundedHttpSession(AIOHTTPSession):
    """aiobotocore's aiohttp session, with BoundedResponse as every response's class."""

    async def _get_session(self, proxy_url: Any) -> aiohttp.ClientSession:
        session: aiohttp.ClientSession = await super()._get_session(proxy_url)  # type: ignore[misc]
        session._response_class = BoundedResponse  # no public hook: aiobotocore builds it
        return session
