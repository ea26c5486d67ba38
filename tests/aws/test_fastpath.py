"""The short path answers exactly as botocore's methods do, and signs as botocore signs."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import parse_qsl
from xml.etree.ElementTree import fromstring

import anyio
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import ClientError
from botocore.model import ShapeResolver
from botocore.parsers import ResponseParserError

from collector.aws.fastpath import (
    CONTENT_TYPE,
    REPORT_METHODS,
    FormSigner,
    ReportCall,
    UnsupportedShapeError,
    element_reader,
)
from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from collector.emulator.serving import serving
from tests.support.shortpath import Recorder, iam_pair

GENERATED = (
    b'<GenerateServiceLastAccessedDetailsResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
    b"<GenerateServiceLastAccessedDetailsResult><JobId>job-1</JobId>"
    b"</GenerateServiceLastAccessedDetailsResult>"
    b"<ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>"
    b"</GenerateServiceLastAccessedDetailsResponse>"
)
ARN = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    faults = Faults(latency=0.3, failed_share=0.2, deleted_share=0.1)
    with running_emulator(EmulatorOptions(principals=40, seed=5, faults=faults)) as emulator:
        yield emulator


def _body(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "ResponseMetadata"}


async def _pages(method: Callable[..., Any], **params: Any) -> list[dict[str, Any]]:
    """Every page, three items at a time: both clients see the same pages."""
    params["MaxItems"] = 3
    pages = [await method(**params)]
    while pages[-1].get("IsTruncated"):
        pages.append(await method(**params, Marker=pages[-1]["Marker"]))
    return pages


async def test_report_methods_take_the_short_path_and_nothing_else() -> None:
    async with iam_pair("http://127.0.0.1:9") as (fast, plain):
        for method in REPORT_METHODS.values():
            assert isinstance(getattr(fast, method), ReportCall)
            assert not isinstance(getattr(plain, method), ReportCall)
        assert not isinstance(fast.list_users, ReportCall)


async def test_every_report_answer_reads_as_botocore_reads_it(emu: Emulator) -> None:
    """In progress, completed, failed; service and action level; Marker pages; entities."""
    compared = {"IN_PROGRESS": 0, "COMPLETED": 0, "FAILED": 0, "entity pages": 0}
    with anyio.fail_after(120):
        async with iam_pair(emu.endpoint) as (fast, plain):
            arns = [
                item["Arn"]
                for listing in (await plain.list_users(), await plain.list_policies(Scope="Local"))
                for item in listing.get("Users", listing.get("Policies", []))
            ][:16]
            for index, arn in enumerate(arns):
                level = "ACTION_LEVEL" if index % 2 else "SERVICE_LEVEL"
                try:
                    job = await fast.generate_service_last_accessed_details(
                        Arn=arn, Granularity=level
                    )
                except ClientError as error:  # a deleted principal: both must say so alike
                    with pytest.raises(ClientError) as refused:
                        await plain.generate_service_last_accessed_details(Arn=arn)
                    assert error.response["Error"] == refused.value.response["Error"]
                    continue
                assert set(job) == {"JobId", "ResponseMetadata"}
                while True:
                    mine = await _pages(fast.get_service_last_accessed_details, JobId=job["JobId"])
                    theirs = await _pages(
                        plain.get_service_last_accessed_details, JobId=job["JobId"]
                    )
                    if mine[0]["JobStatus"] == "IN_PROGRESS" != theirs[0]["JobStatus"]:
                        continue  # the job ended between the two reads: read both again
                    assert [_body(page) for page in mine] == [_body(page) for page in theirs]
                    compared[mine[0]["JobStatus"]] += 1
                    if mine[0]["JobStatus"] != "IN_PROGRESS":
                        break
                    await anyio.sleep(0.1)
                for service in (s for page in mine for s in page["ServicesLastAccessed"]):
                    if "LastAuthenticated" not in service:
                        continue
                    params = {
                        "JobId": job["JobId"],
                        "ServiceNamespace": service["ServiceNamespace"],
                    }
                    mine = await _pages(
                        fast.get_service_last_accessed_details_with_entities, **params
                    )
                    theirs = await _pages(
                        plain.get_service_last_accessed_details_with_entities, **params
                    )
                    assert [_body(page) for page in mine] == [_body(page) for page in theirs]
                    compared["entity pages"] += len(mine)
    # The comparisons above covered every kind of answer, not an empty set of them.
    assert compared["IN_PROGRESS"] and compared["COMPLETED"] and compared["FAILED"]
    assert compared["entity pages"] > 5


@pytest.mark.parametrize(
    ("faults", "codes", "status_class"),
    [
        (Faults(throttle_share=1.0), {"Throttling"}, 4),
        (Faults(transient_share=1.0), {"ServiceFailure", "ServiceUnavailable"}, 5),
        (
            Faults(access_denied=frozenset({"GenerateServiceLastAccessedDetails"})),
            {"AccessDenied"},
            4,
        ),
    ],
    ids=["throttled", "transient", "denied"],
)
async def test_error_answers_raise_what_botocore_raises(
    faults: Faults, codes: set[str], status_class: int
) -> None:
    """The modelled exception class, code and status the sweep's retry policy reads."""
    options = EmulatorOptions(principals=4, seed=1, faults=faults, account_id="210987654321")
    with running_emulator(options) as emulator, anyio.fail_after(60):
        async with iam_pair(emulator.endpoint) as (fast, plain):
            for client in (fast, plain):
                with pytest.raises(ClientError) as raised:
                    await client.generate_service_last_accessed_details(Arn=ARN)
                response = raised.value.response
                assert response["Error"]["Code"] in codes
                assert type(raised.value) is client.exceptions.from_code(response["Error"]["Code"])
                assert response["ResponseMetadata"]["HTTPStatusCode"] // 100 == status_class
                assert raised.value.operation_name == "GenerateServiceLastAccessedDetails"


def _expected_signature(recorded: dict[str, Any], secret: str) -> str:
    """The signature AWS computes from the request it received, with the secret key."""
    authorization = recorded["headers"]["authorization"]
    fields = dict(part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    access_key, date, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    request = AWSRequest(
        "POST",
        recorded["url"],
        headers={name: recorded["headers"][name] for name in signed},
        data=recorded["body"],
    )
    amz_date = recorded["headers"]["x-amz-date"]
    request.context["timestamp"] = amz_date
    token = recorded["headers"].get("x-amz-security-token")
    signer = SigV4Auth(ReadOnlyCredentials(access_key, secret, token), service, region)
    canonical = signer.canonical_request(request)
    assert date == amz_date[:8]
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


async def test_requests_are_signed_as_botocore_signs_them() -> None:
    """Same scope, signed headers and form; each signature checks out as AWS would check it."""
    recorder = Recorder(GENERATED)
    keys = {
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret/EXAMPLE",
        "aws_session_token": "token+EXAMPLE",
    }
    with serving(recorder, 0, "recorder") as endpoint, anyio.fail_after(30):
        async with iam_pair(endpoint, **keys) as (fast, plain):
            for client in (fast, plain):
                answer = await client.generate_service_last_accessed_details(
                    Arn=ARN, Granularity="ACTION_LEVEL"
                )
                assert answer["JobId"] == "job-1"
    mine, theirs = recorder.requests
    for recorded in (mine, theirs):
        signature = _expected_signature(recorded, keys["aws_secret_access_key"])
        assert recorded["headers"]["authorization"].endswith(f"Signature={signature}")
        assert recorded["headers"]["x-amz-security-token"] == keys["aws_session_token"]
    scope = "Credential=AKIDEXAMPLE/{}/us-east-1/iam/aws4_request"
    today = mine["headers"]["x-amz-date"][:8]
    for recorded in (mine, theirs):
        assert scope.format(today) in recorded["headers"]["authorization"]
    assert _signed_headers(mine) == _signed_headers(theirs)
    assert parse_qsl(mine["body"].decode()) == parse_qsl(theirs["body"].decode())
    assert mine["headers"]["content-type"] == theirs["headers"]["content-type"]
    assert mine["headers"]["user-agent"] == theirs["headers"]["user-agent"]
    assert datetime.datetime.strptime(today, "%Y%m%d")  # a real date, not a fixed one


def _signed_headers(recorded: dict[str, Any]) -> str:
    return str(recorded["headers"]["authorization"].split("SignedHeaders=")[1].split(",")[0])


async def test_an_answer_that_is_not_xml_raises_botocores_parser_error() -> None:
    """A proxy's HTML page with 200: the same error as botocore's, which the sweep retries."""
    recorder = Recorder(b"<html><body>captive portal</body>")
    with serving(recorder, 0, "recorder") as endpoint, anyio.fail_after(30):
        async with iam_pair(endpoint) as (fast, plain):
            for client in (fast, plain):
                with pytest.raises(ResponseParserError):
                    await client.generate_service_last_accessed_details(Arn=ARN)
    assert len(recorder.requests) == 2


def test_shapes_beyond_structures_lists_and_scalars_are_refused() -> None:
    """A model feature the reader does not know keeps that operation on botocore's path; the
    plain shapes beside them are read."""
    shapes = ShapeResolver(
        cast(
            Any,
            {
                "Flat": {"type": "list", "member": {"shape": "Text"}, "flattened": True},
                "Wrapper": {"type": "structure", "members": {"Items": {"shape": "Flat"}}},
                "Dictionary": {"type": "map", "key": {"shape": "Text"}, "value": {"shape": "Text"}},
                "Text": {"type": "string"},
                "Texts": {"type": "list", "member": {"shape": "Text"}},
                "Plain": {
                    "type": "structure",
                    "members": {"Items": {"shape": "Texts"}, "Count": {"shape": "Number"}},
                },
                "Number": {"type": "integer"},
            },
        )
    )
    for name in ("Flat", "Wrapper", "Dictionary"):
        with pytest.raises(UnsupportedShapeError):
            element_reader(shapes.get_shape_by_name(name))
    read_plain = element_reader(shapes.get_shape_by_name("Plain"))
    xml = "<Plain><Items><member>a</member><member>b</member></Items><Count>2</Count></Plain>"
    assert read_plain(fromstring(xml)) == {"Items": ["a", "b"], "Count": 2}  # noqa: S314


@pytest.mark.parametrize(
    ("url", "region", "token"),
    [
        ("https://iam.amazonaws.com/", "us-east-1", None),
        ("https://iam.cn-north-1.amazonaws.com.cn:443/", "cn-north-1", "token+/=  two  spaces"),
        ("http://127.0.0.1:18556/", "us-east-1", "FwoGZXIvYXdzEJr//////////wEaDM"),
        ("http://LocalHost:80", "eu-west-1", None),
    ],
)
def test_the_form_signer_signs_exactly_as_botocore(
    url: str, region: str, token: str | None
) -> None:
    """Every header botocore's SigV4Auth sets, byte for byte, at the same instant; across two
    days and two keys, so the kept signing key never outlives its day or its secret."""
    signer = FormSigner(url, region, "iam", CONTENT_TYPE)
    body = (
        "Action=GenerateServiceLastAccessedDetails&Arn=arn%3Aaws%3Aiam%3A%3A1%3Auser%2Fé".encode()
    )
    for secret in ("secret/EXAMPLE+key", "another"):
        for when in ("2026-11-23T23:59:59", "2026-11-24T00:00:01"):
            credentials = ReadOnlyCredentials("AKIDEXAMPLE", secret, token)
            request = AWSRequest(
                "POST", url, headers={"Content-Type": CONTENT_TYPE, "User-Agent": "ua"}, data=body
            )
            instant = datetime.datetime.fromisoformat(when).replace(tzinfo=datetime.UTC)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("botocore.auth.get_current_datetime", lambda now=instant: now)
                SigV4Auth(credentials, "iam", region).add_auth(request)
            theirs = {
                name: request.headers[name]
                for name in ("X-Amz-Date", "X-Amz-Security-Token", "Authorization")
                if name in request.headers
            }
            assert signer.headers(credentials, body, instant) == theirs
