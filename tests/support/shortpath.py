"""The report calls' short path beside botocore's: a client pair, and a server with fixed answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.session import AioSession

from collector.aws.clients import client_config
from collector.aws.fastpath import use_fast_report_calls
from collector.aws.tuning import tune_iam_client


@asynccontextmanager
async def iam_pair(endpoint: str, **keys: str) -> AsyncIterator[tuple[Any, Any]]:
    """A client on the short path and a plain botocore one, same session and settings."""
    session = AioSession()
    options: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1", **keys}
    async with (
        session.create_client("iam", config=client_config(), **options) as fast,
        session.create_client("iam", config=client_config(), **options) as plain,
    ):
        await use_fast_report_calls(tune_iam_client(fast))
        yield fast, plain


class Recorder:
    """A WSGI app that keeps each request and answers with a fixed body."""

    def __init__(self, answer: bytes, status: str = "200 OK") -> None:
        self.answer = answer
        self.status = status
        self.requests: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        self.requests.append(
            {
                "url": f"http://{environ['HTTP_HOST']}{environ['PATH_INFO']}",
                "headers": headers,
                "body": environ["wsgi.input"].read(length),
            }
        )
        start_response(self.status, [("Content-Type", "text/xml")])
        return [self.answer]
