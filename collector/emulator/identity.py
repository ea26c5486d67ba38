"""The emulator's one caller: the IAM user that STS GetCallerIdentity and AccessDenied name."""

from __future__ import annotations

import base64
import hashlib

from collector.emulator import wire

CALLER_NAME = "collector"
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


def caller_arn(account_id: str) -> str:
    """The caller's ARN, as STS gives it for an IAM user (an `iam` ARN, not `sts`)."""
    return f"arn:aws:iam::{account_id}:user/{CALLER_NAME}"


def caller_user_id(account_id: str) -> str:
    """A user id shaped like IAM's (AIDA + 17 characters), fixed per account."""
    digest = hashlib.sha256(f"{account_id}/{CALLER_NAME}".encode()).digest()
    return "AIDA" + base64.b32encode(digest).decode()[:17]


def get_caller_identity(account_id: str) -> bytes:
    """The GetCallerIdentity answer for the caller."""
    parts = (
        wire.element("Arn", caller_arn(account_id))
        + wire.element("UserId", caller_user_id(account_id))
        + wire.element("Account", account_id)
    )
    return (
        f'<GetCallerIdentityResponse xmlns="{STS_NAMESPACE}">'
        f"<GetCallerIdentityResult>{parts}</GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{wire.request_id()}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    ).encode()
