"""Every private part of botocore, aiobotocore and aiohttp the collector reads is held to the
source it was tested with (aiobotocore's own tests/test_patches.py does this for botocore).

An upgrade that changes one fails here, naming the member and what of ours depends on it: read
the new source, check (or fix) the user named beside it, then put the new digest in the table.
pyproject.toml pins aiobotocore (which pins botocore) and aiohttp to the tested minor versions.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from botocore.handlers import BUILTIN_HANDLERS, json_decode_policies

PACKAGE = Path(__file__).resolve().parents[2] / "collector"

# member (module:qualified name) -> (which of our modules depends on it, and on what; digest)
GUARDED: dict[str, tuple[str, str]] = {
    # fastpath.py: the client's credentials, HTTP session, User-Agent and endpoint ruleset.
    "botocore.client:BaseClient.__init__": (
        "fastpath, tuning: _request_signer, _endpoint, _user_agent_creator, _ruleset_resolver",
        "b1cf92e625394843",
    ),
    "botocore.signers:RequestSigner.__init__": (
        "fastpath: _request_signer._credentials is the refreshing credentials object",
        "c216e1a5853da091",
    ),
    "aiobotocore.signers:AioRequestSigner.get_auth_instance": (
        "fastpath: botocore signs with await _credentials.get_frozen_credentials() too",
        "4b6f991818fc633d",
    ),
    "botocore.endpoint:Endpoint.__init__": (
        "fastpath: _endpoint.http_session; tuning: _endpoint._response_parser_factory",
        "d545bc03edab46cf",
    ),
    "aiobotocore.endpoint:AioEndpoint._send": (
        "fastpath: http_session.send(prepared request) is how botocore sends",
        "1d910e2ff7bff8db",
    ),
    "aiobotocore.endpoint:AioEndpoint._do_get_response": (
        "tuning: the response parser comes from _response_parser_factory per response",
        "082b773ba52d7a7e",
    ),
    "aiobotocore.httpsession:AIOHTTPSession.send": (
        "fastpath: takes an AWSPreparedRequest, answers status_code, headers, await content",
        "9633db7fc585c5fb",
    ),
    "botocore.useragent:UserAgentString.__init__": (
        "tuning: _client_features (None until set)",
        "efcade6bc77d3fc7",
    ),
    "botocore.useragent:UserAgentString.to_string": (
        "fastpath (header), tuning (memoized per feature set): varies only with the features",
        "50d24364f32a2d1d",
    ),
    "botocore.useragent:UserAgentString.set_client_features": (
        "tuning: the only writer of _client_features",
        "eb400cbaae441502",
    ),
    "aiobotocore.client:AioBaseClient._resolve_endpoint_ruleset": (
        "fastpath: (url, headers, properties) and the signing context of an operation",
        "4e0908a83a61479d",
    ),
    "aiobotocore.regions:AioEndpointRulesetResolver.construct_endpoint": (
        "tuning: resolved once per operation (IAM takes no context parameters)",
        "ab86e43c64cc5035",
    ),
    "botocore.awsrequest:AWSPreparedRequest.__init__": (
        "fastpath: (method, url, headers, body, stream_output)",
        "ca2a1c7d9437c594",
    ),
    "botocore.awsrequest:prepare_request_dict": (
        "fastpath: the request URL botocore builds from endpoint and requestUri",
        "f2fcf2bf122acc77",
    ),
    "botocore.auth:SigV4Auth.canonical_request": (
        "fastpath: FormSigner takes the canonical path from it",
        "fcddf419e5c48554",
    ),
    "botocore.auth:SigV4Auth.headers_to_sign": (
        "fastpath: FormSigner takes the host header from it",
        "ab710967c39dab72",
    ),
    "botocore.parsers:QueryParser._parse_body_as_xml": (
        "fastpath: the result wrapper is read as botocore finds it",
        "7ccb3c84ce15b5d8",
    ),
    "botocore.parsers:QueryParser._inject_response_metadata": (
        "fastpath: ResponseMetadata, each child's text",
        "44349121c5c2aadb",
    ),
    "botocore.parsers:BaseXMLResponseParser._handle_structure": (
        "fastpath: element_reader reads structures as this does (unknown elements ignored)",
        "b04ff87ceaf2c61a",
    ),
    "botocore.parsers:BaseXMLResponseParser._handle_list": (
        "fastpath: element_reader reads non-flattened lists as this does",
        "41ac489ed3db1561",
    ),
    "botocore.parsers:ResponseParserFactory.set_parser_defaults": (
        "tuning: the timestamp parser given to every parser the factory creates",
        "b1f9e054261286cc",
    ),
    "aiobotocore.parsers:AioResponseParserFactory.create_parser": (
        "tuning: a parser per protocol with the defaults set",
        "d680c348280e42bb",
    ),
    "botocore.context:get_context": (
        "tuning: the request context's features key the memoized User-Agent",
        "d63d488bfa2fa5e7",
    ),
    "botocore.handlers:json_decode_policies": (
        "tuning: unregistered from after-call.iam (the sweep reads no policy document)",
        "b2189423b23c53a5",
    ),
    # http.py: response size bound and shared TLS contexts.
    "aiobotocore.httpsession:AIOHTTPSession.__init__": (
        "http: _verify, _cert_file, _key_file key the shared TLS contexts",
        "ed72f5104696dd32",
    ),
    "aiobotocore.httpsession:AIOHTTPSession._build_ssl_contexts": (
        "http: overridden to share contexts; (proxy_url) -> (context, proxy context)",
        "6f392f5c758d3653",
    ),
    "aiobotocore.httpsession:AIOHTTPSession._get_session": (
        "http: overridden to set the aiohttp session's _response_class",
        "9050ac5aa443ec89",
    ),
    "aiohttp.client:ClientSession.__init__": (
        "http: _response_class is the class every response is built with",
        "931c88d2cb1affb4",
    ),
    "aiohttp.client_reqrep:ClientResponse.read": (
        "http: BoundedResponse.read is this with a size bound (_body, _connection, _wait_released)",
        "87a96c28a5518708",
    ),
    # org/credentials.py: the assumed role's refreshing credentials (issue 25's module).
    "aiobotocore.credentials:AioCachedCredentialFetcher._get_cached_credentials": (
        "org/credentials: _NoCache answers `in` with False, so every fetch calls AssumeRole",
        "e9d75ddc2d5037f5",
    ),
    "botocore.credentials:CachedCredentialFetcher._load_from_cache": (
        "org/credentials: the cache is asked with `in` before it is read",
        "bcc5b1093af410bc",
    ),
    "aiobotocore.credentials:AioRefreshableCredentials.__init__": (
        "org/credentials: time_fetcher, advisory_timeout, mandatory_timeout",
        "5d22232cf3046fef",
    ),
    "botocore.credentials:RefreshableCredentials.__init__": (
        "org/credentials: the refresh windows as constructor arguments",
        "f96b5344637a82e2",
    ),
}

# Private names the package reads on objects that are not its own (ast scan below), and the
# members above that define them.
TOUCHED = {
    "_request_signer": "botocore.client:BaseClient.__init__",
    "_credentials": "botocore.signers:RequestSigner.__init__",
    "_endpoint": "botocore.client:BaseClient.__init__",
    "_user_agent_creator": "botocore.client:BaseClient.__init__",
    "_resolve_endpoint_ruleset": "aiobotocore.client:AioBaseClient._resolve_endpoint_ruleset",
    "_ruleset_resolver": "botocore.client:BaseClient.__init__",
    "_response_parser_factory": "botocore.endpoint:Endpoint.__init__",
    "_client_features": "botocore.useragent:UserAgentString.__init__",
    "_response_class": "aiohttp.client:ClientSession.__init__",
    "_build_ssl_contexts": "aiobotocore.httpsession:AIOHTTPSession._build_ssl_contexts",
    "_get_session": "aiobotocore.httpsession:AIOHTTPSession._get_session",
}


def _member(path: str) -> Any:
    module, _, qualified = path.partition(":")
    found: Any = importlib.import_module(module)
    for name in qualified.split("."):
        found = getattr(found, name)
    return found


def _digest(member: Any) -> str:
    return hashlib.sha256(inspect.getsource(member).encode()).hexdigest()[:16]


@pytest.mark.parametrize("path", GUARDED)
def test_each_guarded_member_is_the_source_it_was_tested_with(path: str) -> None:
    """A changed (or vanished) member fails with its name and what of ours reads it."""
    user, digest = GUARDED[path]
    try:
        member = _member(path)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{path} is gone ({error}); used by {user}")
    assert _digest(member) == digest, (
        f"{path} changed (now {_digest(member)}): check {user}, then update its digest"
    )


def test_json_decode_policies_is_registered_where_tuning_unregisters_it() -> None:
    """tuning unregisters ('after-call.iam', json_decode_policies): it must be registered so."""
    assert ("after-call.iam", json_decode_policies) in BUILTIN_HANDLERS


def _private_reads(tree: ast.AST) -> set[str]:
    """`thing._name` where `thing` is not `self`/`cls`, and `super()._name`."""
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "os"):
            continue  # our own members; os._exit is public API
        found.add(node.attr)
    return found


def test_every_private_name_the_package_reads_is_guarded() -> None:
    """A new reach into a library's internals fails here until it is added to the table."""
    read: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if {"emulator", "report"} & set(path.relative_to(PACKAGE).parts):
            continue  # not the sweep: neither runs in production nor touches botocore's inside
        for name in _private_reads(ast.parse(path.read_text(encoding="utf-8"))):
            read.setdefault(name, set()).add(str(path.relative_to(PACKAGE)))
    unguarded = {name: sorted(paths) for name, paths in read.items() if name not in TOUCHED}
    assert not unguarded, f"private names read but not guarded: {unguarded}"
    assert set(TOUCHED.values()) <= set(GUARDED)
