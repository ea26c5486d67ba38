"""The sweep's three report calls on a short path: botocore's SigV4, session and parser kept."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from xml.etree.ElementTree import Element, fromstring

import structlog
from botocore import xform_name
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, prepare_request_dict
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, NoCredentialsError
from botocore.model import OperationModel, Shape
from botocore.parsers import QueryParser
from botocore.utils import percent_encode_sequence

from collector.aws.iam import GENERATE, GET, GET_WITH_ENTITIES
from collector.aws.tuning import parse_timestamp, tune_iam_client

if TYPE_CHECKING:
    from botocore.compat import HTTPHeaders

log = structlog.get_logger()

# The calls a sweep makes thousands of times, by client method (botocore's own naming);
# List* and STS keep botocore's full pipeline.
REPORT_METHODS = {name: xform_name(name) for name in (GENERATE, GET, GET_WITH_ENTITIES)}
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
SCALARS: Mapping[str, Callable[[str], Any]] = {
    "string": str,
    "integer": int,
    "long": int,
    "boolean": lambda text: text == "true",
    "timestamp": parse_timestamp,
}
ReadElement = Callable[[Element], Any]


class UnsupportedShapeError(Exception):
    """A shape the short reader does not handle: that operation keeps botocore's pipeline."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def element_reader(shape: Shape) -> ReadElement:
    """A function that reads an XML element into what botocore's QueryParser makes of `shape`.

    Built once per operation from the service model, so each response costs one walk of its
    elements and nothing per shape. Whatever the model uses beyond plain structures, lists
    and scalars (attributes, flattened lists, maps, blobs) raises UnsupportedShapeError.
    """
    serialization = shape.serialization
    if serialization.get("flattened") or serialization.get("xmlAttribute"):
        raise UnsupportedShapeError(shape.name)
    if shape.type_name == "structure":
        members: dict[str, tuple[str, ReadElement]] = {}
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            if member.serialization.get("location"):
                raise UnsupportedShapeError(f"{shape.name}.{name}")
            members[member.serialization.get("name", name)] = (name, element_reader(member))

        def read_structure(node: Element) -> dict[str, Any]:
            parsed: dict[str, Any] = {}
            for child in node:
                found = members.get(_local(child.tag))
                if found is not None:
                    parsed[found[0]] = found[1](child)
            return parsed

        return read_structure
    if shape.type_name == "list":
        read_member = element_reader(shape.member)  # type: ignore[attr-defined]
        return lambda node: [read_member(item) for item in node]
    scalar = SCALARS.get(shape.type_name)
    if scalar is None:
        raise UnsupportedShapeError(f"{shape.name}: {shape.type_name}")
    return lambda node: scalar(node.text or "")


class FormSigner:
    """SigV4 for one endpoint's form POSTs, as botocore's SigV4Auth signs them.

    What never varies for these calls is taken from botocore's own signer once: the canonical
    path and host of the URL. Per call: the date, the body's hash, three or four headers and
    one HMAC; the signing key (four HMACs) is kept per secret and day. Differential tests hold
    every header to botocore's for the same instant.
    """

    def __init__(self, url: str, region: str, service: str, content_type: str) -> None:
        template = AWSRequest("POST", url, headers={}, data=b"")
        signer = SigV4Auth(ReadOnlyCredentials("", "", None), service, region)
        self._path = signer.canonical_request(template).split("\n")[1]  # its canonical URI
        self._host = signer.headers_to_sign(template)["host"]
        self._region = region
        self._service = service
        self._content_type = " ".join(content_type.split())
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret, day, signing key)

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key[:2] != (secret, day):
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key = (secret, day, key)
        return self._key[2]

    def headers(
        self, credentials: ReadOnlyCredentials, body: bytes, now: datetime | None = None
    ) -> dict[str, str]:
        """The X-Amz-Date, session token and Authorization headers of a POST of `body`."""
        stamp = (now or datetime.now(UTC)).strftime(SIGV4_TIMESTAMP)
        day = stamp[:8]
        signed = {"content-type": self._content_type, "host": self._host, "x-amz-date": stamp}
        if credentials.token:
            signed["x-amz-security-token"] = " ".join(credentials.token.split())
        names = ";".join(signed)  # already in sorted order
        canonical = "\n".join(
            (
                "POST",
                self._path,
                "",
                "".join(f"{name}:{value}\n" for name, value in signed.items()),
                names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        if credentials.secret_key is None:
            raise NoCredentialsError()
        signature = hmac.new(
            self._signing_key(credentials.secret_key, day), to_sign.encode(), "sha256"
        ).hexdigest()
        headers = {"X-Amz-Date": stamp}
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return headers


class ReportCall:
    """One report operation as a signed form POST, its answer read with `element_reader`.

    botocore spends most of a call's CPU on what never varies for these three calls: events,
    serializer, endpoint rules, retry handler and a generic walk of the model per element.
    Kept from botocore: SigV4 as its signer computes it (`FormSigner`), the client's (refreshing)
    credentials, its HTTP
    session (proxies, CA bundle, timeouts, the size bound) with its connection errors, and,
    for error answers and any answer the short reader cannot read, its own parser and
    modelled exceptions: the sweep sees what it saw from the client's method.
    """

    def __init__(self, iam: Any, operation: OperationModel, url: str, signing: Mapping[str, str]):
        self.operation = operation.name
        self._operation = operation
        self._url = url
        self._signer = FormSigner(
            url,
            signing.get("region", iam.meta.region_name),
            signing.get("signing_name", operation.service_model.signing_name),
            CONTENT_TYPE,
        )
        shape = operation.output_shape
        if shape is None or "resultWrapper" not in shape.serialization:
            raise UnsupportedShapeError(operation.name)
        self._shape = shape
        self._read = element_reader(shape)
        self._wrapper = shape.serialization["resultWrapper"]
        # The form's constant head, encoded once: "Action=...&Version=...".
        self._form_head = percent_encode_sequence(
            {"Action": operation.name, "Version": operation.metadata["apiVersion"]}
        )
        # Private parts of the client, read once: nothing public hands them out.
        self._credentials = iam._request_signer._credentials
        self._http = iam._endpoint.http_session
        self._user_agent = iam._user_agent_creator.to_string()
        self._exceptions = iam.exceptions
        self._parser = QueryParser(timestamp_parser=parse_timestamp)

    async def __call__(self, **params: Any) -> dict[str, Any]:
        form = f"{self._form_head}&{percent_encode_sequence(params)}" if params else self._form_head
        body = form.encode()
        if self._credentials is None:
            raise NoCredentialsError()
        credentials = await self._credentials.get_frozen_credentials()
        headers = {"Content-Type": CONTENT_TYPE, "User-Agent": self._user_agent}
        headers |= self._signer.headers(credentials, body)
        # The session only reads `headers.items()`: a dict spares building botocore's HTTPHeaders.
        prepared = AWSPreparedRequest("POST", self._url, cast("HTTPHeaders", headers), body, False)
        response = await self._http.send(prepared)
        content: bytes = await response.content
        if response.status_code == 200:
            fast = self._read_fast(content)
            if fast is not None:
                return fast
        answer = {"body": content, "headers": response.headers, "status_code": response.status_code}
        parsed: dict[str, Any] = self._parser.parse(answer, self._shape)
        if response.status_code >= 300:
            code = parsed.get("Error", {}).get("Code")
            raise self._exceptions.from_code(code)(parsed, self._operation.name)
        return parsed

    def _read_fast(self, content: bytes) -> dict[str, Any] | None:
        """The answer, or None when it is not the expected document (botocore then decides)."""
        try:
            # The parser botocore itself uses (expat, which caps entity expansion since 2.4.1),
            # on a body the HTTP session bounds in size.
            root = fromstring(content)  # noqa: S314
        except SyntaxError:  # ElementTree's ParseError
            return None
        result: Element | None = None
        metadata: dict[str, Any] = {}
        for child in root:
            tag = _local(child.tag)
            if tag == self._wrapper:
                result = child
            elif tag == "ResponseMetadata":
                # As botocore reads it: each child's own text (IAM indents its answers, so the
                # element's whole text would carry the whitespace around <RequestId>).
                metadata = {_local(item.tag): item.text for item in child}
        if result is None:
            return None
        try:
            parsed: dict[str, Any] = self._read(result)
        except ValueError:  # a number or timestamp that does not read
            return None
        parsed["ResponseMetadata"] = metadata | {"HTTPStatusCode": 200}
        return parsed


async def report_calls(iam: Any) -> dict[str, ReportCall]:
    """The short-path calls for the client's three report methods, by method name; built, not
    installed, so that whatever fails here leaves the client as it was.

    The endpoint and signing scope come from the client's own ruleset, once per operation (IAM's
    depend on no call argument: see tuning). An operation whose model or endpoint asks for
    anything the short path does not do keeps botocore's method.
    """
    model = iam.meta.service_model
    if model.protocol != "query":
        return {}
    calls: dict[str, ReportCall] = {}
    for name, method in REPORT_METHODS.items():
        operation = model.operation_model(name)
        context: dict[str, Any] = {}
        try:
            url, headers, _ = await iam._resolve_endpoint_ruleset(operation, {}, context)
        except BotoCoreError:  # botocore's method raises it where the sweep expects it
            continue
        if headers or context.get("auth_type", "v4") != "v4":
            continue
        try:
            calls[method] = ReportCall(
                iam, operation, _joined(url, operation), context.get("signing", {})
            )
        except UnsupportedShapeError:
            continue
    return calls


async def use_fast_report_calls(iam: Any) -> list[str]:
    """Send the client's report methods down the short path; every other call is as it was.

    Returns the operations that now take it.
    """
    calls = await report_calls(iam)
    for method, call in calls.items():
        setattr(iam, method, call)
    return [call.operation for call in calls.values()]


async def install_short_path(iam: Any, *, enabled: bool) -> str:
    """The IAM client tuned and its report calls on the short path, when `enabled`; which path
    the report calls take: `short`, `aiobotocore`, or `short: <operations>` when only some do.

    Both read private botocore and aiobotocore parts (tests/aws/test_private_members.py holds
    their source to the tested versions). Whatever goes wrong while setting them up is one
    warning, and the client keeps aiobotocore's own methods: a changed internal must cost CPU,
    never a sweep.
    """
    if not enabled:
        return "aiobotocore"
    try:
        calls = await report_calls(iam)
        tune_iam_client(iam)
    except Exception as error:  # any change of the internals, whatever it raises
        log.warning(
            "collector.aws.short_path_unavailable",
            error=f"{type(error).__name__}: {error}",
            fallback="aiobotocore",
        )
        return "aiobotocore"
    for method, call in calls.items():
        setattr(iam, method, call)
    if len(calls) == len(REPORT_METHODS):
        return "short"
    if not calls:
        return "aiobotocore"
    return "short: " + ", ".join(sorted(call.operation for call in calls.values()))


def _joined(endpoint_url: str, operation: OperationModel) -> str:
    """The request URL botocore would build: the endpoint joined with the operation's path."""
    request: dict[str, Any] = {
        "url_path": operation.http["requestUri"],
        "query_string": "",
        "headers": {},
        "body": b"",
        "method": "POST",
    }
    prepare_request_dict(request, endpoint_url)
    return str(request["url"])
