"""IAM query-protocol XML: responses, errors, timestamps, and the elements in between."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from xml.sax.saxutils import escape

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"


def timestamp(value: datetime, millis: bool = False) -> str:
    """ISO-8601 UTC with a `Z`: whole seconds, or milliseconds as IAM sends job dates."""
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def element(name: str, value: str | int | bool | datetime | None) -> str:
    """One scalar element, or nothing when the value is absent (never an empty element)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = timestamp(value)
    else:
        text = escape(str(value))
    return f"<{name}>{text}</{name}>"


def structure(name: str, children: Iterable[str]) -> str:
    """A structure element holding already rendered children."""
    return f"<{name}>{''.join(children)}</{name}>"


def members(name: str, items: Iterable[str]) -> str:
    """A list in the query protocol: each item (already rendered children) in a <member>."""
    return f"<{name}>{''.join(f'<member>{item}</member>' for item in items)}</{name}>"


def request_id() -> str:
    """A fresh request id, shaped like IAM's."""
    return str(uuid.uuid4())


def response(operation: str, result: Iterable[str]) -> bytes:
    """The full success document of one operation."""
    return (
        f'<{operation}Response xmlns="{NAMESPACE}">'
        f"<{operation}Result>{''.join(result)}</{operation}Result>"
        f"<ResponseMetadata><RequestId>{request_id()}</RequestId></ResponseMetadata>"
        f"</{operation}Response>"
    ).encode()


def error(code: str, message: str, status: int) -> bytes:
    """The error document: Sender faults for 4xx, Receiver faults for 5xx."""
    kind = "Receiver" if status >= 500 else "Sender"
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id()}</RequestId></ErrorResponse>"
    ).encode()


def s3_error(code: str, message: str) -> bytes:
    """An S3 REST error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        "<RequestId>emulator</RequestId></Error>"
    ).encode()
