"""Less CPU per call for the sweep's IAM client: cheap timestamps, constant parts built once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiobotocore.parsers import AioResponseParserFactory
from botocore.context import get_context
from botocore.handlers import json_decode_policies
from botocore.utils import parse_timestamp as botocore_timestamp


def parse_timestamp(value: str) -> datetime:
    """What botocore's parser returns for IAM's ISO-8601 timestamps, ~100x cheaper.

    botocore hands every timestamp to dateutil (about a tenth of a sweep's CPU). IAM sends
    ISO-8601 with a zone (`2024-05-01T10:00:00Z`), which `datetime.fromisoformat` reads into
    the same instant; anything else (epoch seconds, no zone) goes to botocore's own parser.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return botocore_timestamp(value)
    if parsed.tzinfo is None:
        return botocore_timestamp(value)
    return parsed


def _memoized(creator: Any) -> Callable[[], str]:
    """The creator's string built once per feature set (the only part of it that varies).

    Features are the request's (context) and the client's own, which botocore adds to as the
    client resolves things on its first calls (credentials, for one).
    """
    build: Callable[[], str] = creator.to_string
    built: dict[tuple[frozenset[str], frozenset[str]], str] = {}

    def to_string() -> str:
        context = get_context()
        key = (
            frozenset(context.features) if context is not None else frozenset(),
            frozenset(creator._client_features or ()),
        )
        text = built.get(key)
        if text is None:
            text = built[key] = build()
        return text

    return to_string


def _endpoint_per_operation(resolver: Any) -> Callable[..., Awaitable[Any]]:
    """The resolver's answer kept per operation: IAM's endpoint depends on no call argument.

    The ruleset is evaluated with the client's fixed region, partition and FIPS settings plus
    an operation's context parameters, and IAM declares none (a test checks the model), so one
    resolution per operation holds for the client's life.
    """
    resolve: Callable[..., Awaitable[Any]] = resolver.construct_endpoint
    resolved: dict[str, Any] = {}

    async def construct_endpoint(operation_model: Any, call_args: Any, request_context: Any) -> Any:
        endpoint = resolved.get(operation_model.name)
        if endpoint is None:
            endpoint = await resolve(operation_model, call_args, request_context)
            resolved[operation_model.name] = endpoint
        return endpoint

    return construct_endpoint


Client = TypeVar("Client")


def tune_iam_client(client: Client) -> Client:
    """Make one open IAM client cheaper per call, without changing what it sends or returns.

    Only this client's own parts change, never its session's: the session may also make the
    STS clients that refresh assumed-role credentials (their `Expiration` keeps botocore's
    parser). botocore offers no public per-client hook for these, hence the private names.
    - Responses: a parser factory of its own with the fast timestamp parser (the AWS CLI
      installs a non-parsing one on its session for the same cost).
    - User-Agent: botocore builds it twice per request from ~20 components; the text only
      changes with the request's feature set, so it is built once per set.
    - `json_decode_policies` walks every IAM response for policy documents; the sweep reads
      them from one operation only (GetAccountAuthorizationDetails) and decodes them there.
    - Endpoint: botocore evaluates the endpoint ruleset on every call; IAM's answer depends
      only on the client's settings and the operation, so it is resolved once per operation.
    """
    iam: Any = client
    # Everything is read and built first: a private part that is not there any more fails
    # here, before the client is changed at all.
    endpoint, creator, resolver = iam._endpoint, iam._user_agent_creator, iam._ruleset_resolver
    factory = AioResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    to_string = _memoized(creator)
    construct_endpoint = None if resolver is None else _endpoint_per_operation(resolver)
    endpoint._response_parser_factory = factory
    creator.to_string = to_string
    iam.meta.events.unregister("after-call.iam", json_decode_policies)
    if construct_endpoint is not None:
        resolver.construct_endpoint = construct_endpoint
    return client
