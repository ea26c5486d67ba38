"""IAM's List calls paged as IAM pages them (MaxItems, opaque Marker, PathPrefix, short
pages), cut from the complete lists moto renders; moto's own code stays untouched."""

from __future__ import annotations

import io
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from collector.emulator import wire
from collector.emulator.faults import FaultInjector
from collector.emulator.markers import decode_marker, encode_marker
from collector.emulator.operations import DEFAULT_MAX_ITEMS, Answer, InvalidInput

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# List operation -> the element holding its items.
LISTS: Mapping[str, str] = {
    "ListUsers": "Users",
    "ListGroups": "Groups",
    "ListRoles": "Roles",
    "ListPolicies": "Policies",
}
# Parameters that choose what moto lists; paging and PathPrefix are ours.
_FILTERS: Mapping[str, tuple[str, ...]] = {
    "ListPolicies": ("Scope", "OnlyAttached", "PolicyUsageFilter"),
}
# moto pages ListRoles and ListPolicies itself (and ignores paging on the others): ask for all.
_EVERYTHING = "100000000"

# One item: its Path (for PathPrefix) and its rendered children.
Item = tuple[str, str]


def _encode_marker(operation: str, offset: int) -> str:
    return encode_marker(operation, offset)


def _offset(operation: str, marker: str | None) -> int:
    if marker is None:
        return 0
    # A marker of another List call, or one we never handed out (we never hand out 0).
    offset = decode_marker(marker, operation, low=1)
    if offset is None:
        raise InvalidInput("Invalid Marker.")
    return offset


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _render(node: ET.Element) -> str:
    """An element as the query protocol writes it, without namespaces or whitespace."""
    inner = "".join(_render(child) for child in node) if len(node) else escape(node.text or "")
    return f"<{_local(node.tag)}>{inner}</{_local(node.tag)}>"


class Listings:
    """Serves ListUsers, ListGroups, ListRoles and ListPolicies for one account."""

    def __init__(self, moto_app: WSGIApp, injector: FaultInjector) -> None:
        self.moto_app = moto_app
        self.injector = injector
        self._cache: dict[tuple[str, ...], list[Item]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget the cached lists: an IAM call may have changed the account."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    def handle(self, operation: str, params: Mapping[str, str], environ: dict[str, Any]) -> Answer:
        """One page of a List call (params already checked against the model)."""
        try:
            return self._page(operation, params, environ)
        except InvalidInput as exc:
            return Answer(400, wire.error("InvalidInput", str(exc), 400))

    def _page(self, operation: str, params: Mapping[str, str], environ: dict[str, Any]) -> Answer:
        max_items = int(params.get("MaxItems", DEFAULT_MAX_ITEMS))
        offset = _offset(operation, params.get("Marker"))
        items = self._items(operation, params, environ)
        if isinstance(items, Answer):
            return items
        prefix = params.get("PathPrefix", "/")
        matching = [inner for path, inner in items if path.startswith(prefix)]
        end = offset + self.injector.page_size(max_items)
        more = end < len(matching)
        parts = [
            wire.members(LISTS[operation], matching[offset:end]),
            # IAM always says whether there is more, and gives a Marker only when there is.
            wire.element("IsTruncated", more),
            wire.element(
                "Marker",
                self.injector.marker(operation, _encode_marker(operation, end)) if more else None,
            ),
        ]
        return Answer(200, wire.response(operation, parts))

    def _items(
        self, operation: str, params: Mapping[str, str], environ: dict[str, Any]
    ) -> list[Item] | Answer:
        """The complete list moto renders for these filters, cached until the account changes."""
        filters = {name: params[name] for name in _FILTERS.get(operation, ()) if name in params}
        key = (operation, *(f"{name}={value}" for name, value in sorted(filters.items())))
        with self._lock:
            cached = self._cache.get(key)
            generation = self._generation
        if cached is not None:
            return cached
        status, body = self._from_moto(operation, filters, environ)
        if status != 200:
            return Answer(status, body)
        # Trusted input: moto's own rendering, in this process, never a client's bytes.
        root = ET.fromstring(body)  # noqa: S314
        holder = root.find(f"{{*}}{operation}Result/{{*}}{LISTS[operation]}")
        items: list[Item] = []
        for member in holder if holder is not None else ():
            path = member.findtext("{*}Path") or "/"
            items.append((path, "".join(_render(child) for child in member)))
        with self._lock:
            # Keep it only if no IAM write happened while moto rendered it.
            if generation == self._generation:
                self._cache[key] = items
        return items

    def _from_moto(
        self, operation: str, filters: Mapping[str, str], environ: dict[str, Any]
    ) -> tuple[int, bytes]:
        body = urlencode(
            {"Action": operation, "Version": "2010-05-08", **filters, "MaxItems": _EVERYTHING}
        ).encode()
        request = dict(environ)
        request["wsgi.input"] = io.BytesIO(body)
        request["CONTENT_LENGTH"] = str(len(body))
        status: list[int] = []

        def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
            status.append(int(line.split(" ", 1)[0]))

        answer = self.moto_app(request, start_response)
        try:
            data = b"".join(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        return status[0], data
