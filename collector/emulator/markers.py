"""Opaque paging markers: an offset, tied to the call that handed it out."""

from __future__ import annotations

import base64
import binascii


def encode_marker(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode()


def decode_marker(marker: str, kind: str, *, low: int, high: int | None = None) -> int | None:
    """The offset a marker of `kind` carries, within [low, high]; None for any other marker."""
    try:
        found, _, number = base64.urlsafe_b64decode(marker.encode()).decode().partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if found != kind or offset < low or (high is not None and offset > high):
        return None
    return offset
