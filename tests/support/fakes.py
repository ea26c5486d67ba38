"""A scripted stand-in for the IAM client, for stage tests that need no network."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from collector.aws.iam import Caller, IamApi
from collector.config.settings import DiscoverySettings, Rates, RetrySettings
from collector.models import CallStats, Counters, EntitiesMode, Granularity, RunContext
from collector.sweep.env import StageEnv
from collector.sweep.pipeline import make_buckets

if TYPE_CHECKING:
    from types_aiobotocore_iam import IAMClient

CTX = RunContext(run_id="run1", account_id="123456789012")

Answer = dict[str, Any] | Exception | Callable[[dict[str, Any]], dict[str, Any]]


def client_error(code: str, status: int = 400, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message or code},
         "ResponseMetadata": {"RequestId": "", "HostId": "", "HTTPStatusCode": status,
                              "HTTPHeaders": {}, "RetryAttempts": 0}},
        "Operation",
    )  # fmt: skip


class FakeIam:
    """Answers each method with the next scripted answer; records every call's parameters."""

    def __init__(self, script: Mapping[str, Sequence[Answer]]) -> None:
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


async def no_sleep(_: float) -> None:
    return None


def fake_api(iam: FakeIam, **retry: Any) -> IamApi:
    """An IamApi over the fake client: fast buckets, no real backoff sleeps."""
    fast = Rates(generate=1e6, get=1e6, get_with_entities=1e6, list=1e6)
    caller = Caller(RetrySettings(**retry), CallStats(), sleep=no_sleep)
    # FakeIam answers every IAMClient method through __getattr__, which no type can state.
    return IamApi(cast("IAMClient", iam), make_buckets(fast), caller)


def stage_env(
    api: IamApi,
    *,
    granularity: Granularity = "SERVICE_LEVEL",
    entities: EntitiesMode = "accessed",
    discovery: DiscoverySettings | None = None,
    deadline: float = 10.0,
    counters: Counters | None = None,
) -> StageEnv:
    """The environment a stage worker gets, around a fake API."""
    return StageEnv(
        api=api,
        run=CTX,
        counters=counters or Counters(),
        granularity=granularity,
        entities=entities,
        discovery=discovery or DiscoverySettings(),
        job_deadline=deadline,
    )
