"""The short path reads IAM's answers as botocore's QueryParser does, in every format IAM may use.

The emulator writes compact XML; IAM indents its answers, and a proxy or a later API version
may add a declaration, empty elements, elements we do not know, or another member order.
Each document here is served over HTTP and read by a short-path client and a plain one.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import fromstring, register_namespace, tostring

import anyio
import pytest

from collector.emulator.serving import serving
from tests.support.shortpath import Recorder, iam_pair

NS = "https://iam.amazonaws.com/doc/2010-05-08/"
JOB = "78b6c2ba-d09e-6xmp-7039-4d0e2c0b3e6b"
ARN = "arn:aws:iam::123456789012:group/Admins"

GENERATE = f"""<GenerateServiceLastAccessedDetailsResponse xmlns="{NS}">
  <GenerateServiceLastAccessedDetailsResult>
    <JobId>{JOB}</JobId>
  </GenerateServiceLastAccessedDetailsResult>
  <ResponseMetadata>
    <RequestId>2095fc1a-d8b0-11e8-b1e4-6f0a5e2f3e6b</RequestId>
  </ResponseMetadata>
</GenerateServiceLastAccessedDetailsResponse>
"""

SERVICES = f"""<GetServiceLastAccessedDetailsResponse xmlns="{NS}">
  <GetServiceLastAccessedDetailsResult>
    <IsTruncated>true</IsTruncated>
    <Marker>EXAMPLEmarker/+==</Marker>
    <JobCompletionDate>2018-10-24T19:47:35.241Z</JobCompletionDate>
    <JobCreationDate>2018-10-24T19:47:31.466Z</JobCreationDate>
    <ServicesLastAccessed>
      <member>
        <LastAuthenticated>2018-10-24T19:11:00Z</LastAuthenticated>
        <LastAuthenticatedEntity>arn:aws:iam::123456789012:user/AWSExampleUser01</LastAuthenticatedEntity>
        <LastAuthenticatedRegion>us-east-1</LastAuthenticatedRegion>
        <ServiceName>AWS Identity and Access Management</ServiceName>
        <ServiceNamespace>iam</ServiceNamespace>
        <TotalAuthenticatedEntities>2</TotalAuthenticatedEntities>
      </member>
      <member>
        <ServiceName>Amazon Simple Storage Service</ServiceName>
        <ServiceNamespace>s3</ServiceNamespace>
        <TotalAuthenticatedEntities>0</TotalAuthenticatedEntities>
      </member>
    </ServicesLastAccessed>
    <JobStatus>COMPLETED</JobStatus>
    <JobType>SERVICE_LEVEL</JobType>
  </GetServiceLastAccessedDetailsResult>
  <ResponseMetadata>
    <RequestId>4d3f5b8e-d8b0-11e8-8b3f-c1a1f6e2b6aa</RequestId>
  </ResponseMetadata>
</GetServiceLastAccessedDetailsResponse>
"""

ACTIONS = f"""<GetServiceLastAccessedDetailsResponse xmlns="{NS}">
  <GetServiceLastAccessedDetailsResult>
    <IsTruncated>false</IsTruncated>
    <JobCompletionDate>2024-05-01T10:00:02Z</JobCompletionDate>
    <JobCreationDate>2024-05-01T10:00:00Z</JobCreationDate>
    <ServicesLastAccessed>
      <member>
        <LastAuthenticated>2024-04-30T08:15:00Z</LastAuthenticated>
        <LastAuthenticatedEntity>arn:aws:iam::123456789012:role/build</LastAuthenticatedEntity>
        <LastAuthenticatedRegion>eu-west-1</LastAuthenticatedRegion>
        <ServiceName>Amazon Simple Storage Service</ServiceName>
        <ServiceNamespace>s3</ServiceNamespace>
        <TotalAuthenticatedEntities>1</TotalAuthenticatedEntities>
        <TrackedActionsLastAccessed>
          <member>
            <ActionName>GetObject</ActionName>
            <LastAccessedEntity>arn:aws:iam::123456789012:role/build</LastAccessedEntity>
            <LastAccessedRegion>eu-west-1</LastAccessedRegion>
            <LastAccessedTime>2024-04-30T08:15:00.123Z</LastAccessedTime>
          </member>
          <member>
            <ActionName>PutObject</ActionName>
          </member>
        </TrackedActionsLastAccessed>
      </member>
      <member>
        <ServiceName>Amazon EC2</ServiceName>
        <ServiceNamespace>ec2</ServiceNamespace>
        <TotalAuthenticatedEntities>0</TotalAuthenticatedEntities>
        <TrackedActionsLastAccessed/>
      </member>
    </ServicesLastAccessed>
    <JobStatus>COMPLETED</JobStatus>
    <JobType>ACTION_LEVEL</JobType>
  </GetServiceLastAccessedDetailsResult>
  <ResponseMetadata>
    <RequestId>9f1c0e4a-0d1b-4c55-a0c7-5f3f7e6a1b2c</RequestId>
  </ResponseMetadata>
</GetServiceLastAccessedDetailsResponse>
"""

FAILED = f"""<GetServiceLastAccessedDetailsResponse xmlns="{NS}">
  <GetServiceLastAccessedDetailsResult>
    <IsTruncated>false</IsTruncated>
    <JobCreationDate>2024-05-01T10:00:00Z</JobCreationDate>
    <JobCompletionDate>2024-05-01T10:00:09Z</JobCompletionDate>
    <ServicesLastAccessed/>
    <JobStatus>FAILED</JobStatus>
    <JobType>SERVICE_LEVEL</JobType>
    <Error>
      <Code>ServiceFailure</Code>
      <Message>The report job could not be completed because of an internal error.</Message>
    </Error>
  </GetServiceLastAccessedDetailsResult>
  <ResponseMetadata>
    <RequestId>1b7f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d</RequestId>
  </ResponseMetadata>
</GetServiceLastAccessedDetailsResponse>
"""

ENTITIES = f"""<GetServiceLastAccessedDetailsWithEntitiesResponse xmlns="{NS}">
  <GetServiceLastAccessedDetailsWithEntitiesResult>
    <EntityDetailsList>
      <member>
        <EntityInfo>
          <Arn>arn:aws:iam::123456789012:user/AWSExampleUser01</Arn>
          <Name>AWSExampleUser01</Name>
          <Type>USER</Type>
          <Id>AIDAEX2EXAMPLEB6IGCDC</Id>
          <Path>/</Path>
        </EntityInfo>
        <LastAuthenticated>2018-10-24T19:10:00Z</LastAuthenticated>
      </member>
      <member>
        <EntityInfo>
          <Arn>arn:aws:iam::123456789012:role/AWSExampleRole01</Arn>
          <Name>AWSExampleRole01</Name>
          <Type>ROLE</Type>
          <Id>AROAEAEXAMPLEIANXSIU4</Id>
          <Path>/team/</Path>
        </EntityInfo>
      </member>
    </EntityDetailsList>
    <IsTruncated>true</IsTruncated>
    <Marker>EXAMPLE/entities/2</Marker>
    <JobCompletionDate>2018-10-24T19:47:35.241Z</JobCompletionDate>
    <JobCreationDate>2018-10-24T19:47:31.466Z</JobCreationDate>
    <JobStatus>COMPLETED</JobStatus>
  </GetServiceLastAccessedDetailsWithEntitiesResult>
  <ResponseMetadata>
    <RequestId>5d8a1f2e-d8b0-11e8-bf29-5b0e5f2b7a1c</RequestId>
  </ResponseMetadata>
</GetServiceLastAccessedDetailsWithEntitiesResponse>
"""

CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "generate": ("generate_service_last_accessed_details", {"Arn": ARN}),
    "services": ("get_service_last_accessed_details", {"JobId": JOB}),
    "entities": (
        "get_service_last_accessed_details_with_entities",
        {"JobId": JOB, "ServiceNamespace": "iam"},
    ),
}
DOCUMENTS = {
    "generate": GENERATE,
    "services": SERVICES,
    "actions": ACTIONS,
    "failed": FAILED,
    "entities": ENTITIES,
}


def _call(name: str) -> tuple[str, dict[str, Any]]:
    return CALLS["services" if name in ("actions", "failed") else name]


def _compact(document: str) -> str:
    return re.sub(r">\s+<", "><", document).strip()


def _reordered(document: str) -> str:
    """Every element's children in reverse order (XML gives members no order)."""
    register_namespace("", NS)
    root = fromstring(document)  # noqa: S314 - our own document

    def reverse(node: Any) -> None:
        children = list(node)
        for child in children:
            node.remove(child)
            reverse(child)
        for child in reversed(children):
            node.append(child)

    reverse(root)
    return tostring(root, encoding="unicode")


def _with_unknown_elements(document: str) -> str:
    """Elements a later API version (or a proxy) adds, at every level of the answer."""
    document = re.sub(
        r"(<\w+Result>)",
        r"\1<FutureSetting>on</FutureSetting><FutureList><member>1</member></FutureList>",
        document,
        count=1,
    )
    document = document.replace(
        "<member>", "<member><LastAuthenticatedPrincipalType>USER</LastAuthenticatedPrincipalType>"
    )
    document = document.replace(
        "</ResponseMetadata>", "<Host>iam.amazonaws.com</Host></ResponseMetadata>"
    )
    return re.sub(r"(</\w+Response>)", r"<Trailer><Note>x</Note></Trailer>\1", document)


def _non_ascii(document: str) -> str:
    """Names, paths and messages outside ASCII (UTF-8 on the wire)."""
    return (
        document.replace("AWS Identity and Access Management", "AWS Identität — 身份与访问管理")
        .replace("Amazon EC2", "Amazon EC2 ✓")
        .replace("AWSExampleUser01</Name>", "Zoë-Ünal</Name>")
        .replace("<Path>/team/</Path>", "<Path>/équipe/東京/</Path>")
        .replace("because of an internal error.", "à cause d'une erreur interne ✗.")
    )


def _empty_elements(document: str) -> str:
    """Elements present and empty: strings, a marker, the request id, a structure."""
    document = (
        document.replace(
            "<LastAuthenticatedRegion>us-east-1</LastAuthenticatedRegion>",
            "<LastAuthenticatedRegion/>",
        )
        .replace("<Marker>EXAMPLEmarker/+==</Marker>", "<Marker></Marker>")
        .replace("<Path>/team/</Path>", "<Path/>")
        .replace("<ActionName>PutObject</ActionName>", "<ActionName/>")
        .replace(f"<JobId>{JOB}</JobId>", "<JobId></JobId>")
    )
    document = re.sub(r"<RequestId>[^<]*</RequestId>", "<RequestId/>", document)
    return re.sub(r"<Error>.*?</Error>", "<Error/>", document, flags=re.S)


FORMATS = {
    "indented": lambda document: document,
    "declaration": lambda document: '<?xml version="1.0" encoding="UTF-8"?>\n' + document,
    "crlf-tabs": lambda document: document.replace("  ", "\t").replace("\n", "\r\n"),
    "compact": _compact,
    "reordered": _reordered,
    "unknown-elements": _with_unknown_elements,
    "non-ascii": _non_ascii,
    "empty-elements": _empty_elements,
}


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without what botocore's endpoint and retry handler add (headers, attempts)."""
    metadata = answer.get("ResponseMetadata", {})
    added = ("HTTPHeaders", "RetryAttempts", "MaxAttemptsReached")
    kept = {key: value for key, value in metadata.items() if key not in added}
    return answer | {"ResponseMetadata": kept}


async def _both(document: bytes, name: str) -> tuple[Any, Any]:
    """What the short-path client and the plain one return (or raise) for one served answer."""
    method, params = _call(name)
    recorder = Recorder(document)
    outcomes: list[Any] = []
    with serving(recorder, 0, "answers") as endpoint, anyio.fail_after(30):
        async with iam_pair(endpoint) as (fast, plain):
            for client in (fast, plain):
                try:
                    outcomes.append(_comparable(await getattr(client, method)(**params)))
                except Exception as error:  # both must fail alike
                    outcomes.append((type(error), str(error)))
    assert len(recorder.requests) == 2
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("shape", FORMATS)
@pytest.mark.parametrize("name", DOCUMENTS)
async def test_each_report_answer_reads_as_botocores_query_parser_reads_it(
    name: str, shape: str
) -> None:
    """One document per answer kind, in each format: the same dict, RequestId included."""
    document = FORMATS[shape](DOCUMENTS[name]).encode()
    mine, theirs = await _both(document, name)
    assert mine == theirs
    assert isinstance(mine, dict)  # an answer, not an error both made alike
    if name != "generate":
        assert mine["JobStatus"] in ("COMPLETED", "FAILED")


async def test_an_empty_number_fails_as_botocore_fails() -> None:
    """`<TotalAuthenticatedEntities/>` is no number: botocore decides, and both fail alike."""
    document = SERVICES.replace(
        "<TotalAuthenticatedEntities>0</TotalAuthenticatedEntities>",
        "<TotalAuthenticatedEntities/>",
    ).encode()
    mine, theirs = await _both(document, "services")
    assert mine == theirs
    assert isinstance(mine, tuple) and mine[0] is ValueError
