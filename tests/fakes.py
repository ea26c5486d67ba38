"""A scripted stand-in for the IAM client, for stage tests that need no network."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from botocore.exceptions import ClientError

from collector.aws import AwsApi, CallStats, make_buckets
from collector.config import Rates, RetrySettings

Answer = dict[str, Any] | Exception | Callable[[dict[str, Any]], dict[str, Any]]


def client_error(code: str, status: int = 400, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message or code},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        "Operation",
    )  # fmt: skip


class FakeIam:
    """Answers each method with the next scripted answer; records every call's parameters."""

    def __init__(self, script: dict[str, list[Answer]]) -> None:
        self.script = {name: list(answers) for name, answers in script.items()}
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def method(**params: Any) -> dict[str, Any]:
            self.calls[name].append(params)
            answer = self.script[name].pop(0)
            if isinstance(answer, Exception):
                raise answer
            if callable(answer):
                return answer(params)
            return answer

        return method

    def get_paginator(self, name: str) -> FakePaginator:
        return FakePaginator(self, name)


class FakePaginator:
    def __init__(self, iam: FakeIam, name: str) -> None:
        self.iam, self.name = iam, name

    def paginate(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        async def pages() -> AsyncIterator[dict[str, Any]]:
            page = await getattr(self.iam, self.name)(**params)
            yield page
            while page.get("IsTruncated"):
                page = await getattr(self.iam, self.name)(**params, Marker=page["Marker"])
                yield page

        return pages()


async def no_sleep(_: float) -> None:
    return None


def fake_api(iam: FakeIam, **retry: Any) -> AwsApi:
    """An AwsApi over the fake client: fast buckets, no real backoff sleeps."""
    fast = Rates(generate=1e6, get=1e6, get_with_entities=1e6, list=1e6)
    return AwsApi(iam, iam, make_buckets(fast), RetrySettings(**retry), CallStats(), sleep=no_sleep)
