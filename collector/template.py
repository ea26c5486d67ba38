"""The output name: template placeholders, validation, rendering, and the resumable `.part`."""

from __future__ import annotations

import glob
import os
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

STDOUT = "-"
PART_SUFFIX = ".part"
PLACEHOLDERS = ("account_id", "date", "run_id")
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
# What each placeholder can render to, as a regular expression (ASCII digits only).
_RENDERED = {"account_id": "[0-9]{12}", "date": "[0-9]{4}-[0-9]{2}-[0-9]{2}", "run_id": ".+"}
_KNOWN = ", ".join("{" + name + "}" for name in PLACEHOLDERS)


@dataclass(frozen=True)
class OutputTemplate:
    """A parsed `--output`: literal text and placeholders, checked once, before any AWS call."""

    text: str
    parts: tuple[tuple[str, str | None], ...]  # (literal, placeholder or None)

    @classmethod
    def parse(cls, text: str) -> OutputTemplate:
        """The template, or ValueError with the one true reason it cannot be used."""
        if not text.strip():
            raise ValueError("expected a path template or -, got ''")
        if text == STDOUT:
            return cls(text, ((STDOUT, None),))
        if text.startswith("s3://"):
            bucket, _, key = text.removeprefix("s3://").partition("/")
            if not bucket or "{" in bucket or not key:
                raise ValueError(
                    f"expected s3://BUCKET/KEY-TEMPLATE with a literal bucket, got {text!r}"
                )
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(
                f"invalid template {text!r}: {exc} (write {{{{ for a literal {{)"
            ) from None
        parts: list[tuple[str, str | None]] = []
        for literal, name, spec, conversion in parsed:
            if name is not None:
                if name not in PLACEHOLDERS:
                    raise ValueError(
                        f"unknown placeholder {{{name}}} in {text!r} (known: {_KNOWN})"
                    )
                if spec or conversion:
                    raise ValueError(
                        f"placeholder {{{name}}} in {text!r} takes no format or conversion; "
                        f"write {{{name}}}"
                    )
            parts.append((literal, name))
        if text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
            raise ValueError(f"{text!r} names a directory; add a file name, e.g. {text}out.jsonl")
        return cls(text, tuple(parts))

    @property
    def is_stdout(self) -> bool:
        return self.text == STDOUT

    @property
    def is_s3(self) -> bool:
        return self.text.startswith("s3://")

    @property
    def needs_account(self) -> bool:
        """Whether the name is known only once the account is (after sts:GetCallerIdentity)."""
        return any(name == "account_id" for _, name in self.parts)

    def render(self, *, account_id: str, run_id: str, now: datetime) -> str:
        """The output path for one sweep; `-` stays `-`. `now` should be timezone-aware."""
        if self.is_stdout:
            return STDOUT
        values = {
            "account_id": account_id,
            "date": now.astimezone(UTC).strftime("%Y-%m-%d"),
            "run_id": run_id,
        }
        return "".join(
            literal + ("" if name is None else values[name]) for literal, name in self.parts
        )

    def regex(self, *, account_id: str | None = None) -> str:
        """A regular expression of every rendering (of one account, when given)."""
        values = dict(_RENDERED)
        if account_id is not None:
            values["account_id"] = re.escape(account_id)
        return "".join(
            re.escape(literal) + ("" if placeholder is None else values[placeholder])
            for literal, placeholder in self.parts
        )

    def could_render(self, name: str) -> bool:
        """Whether some account, date and run id render this template to `name`, or to `name`
        less a `.part` suffix (the file a sweep writes before it publishes)."""
        body = self.regex() + f"(?:{re.escape(PART_SUFFIX)})?"
        return re.fullmatch(body, name, re.DOTALL) is not None

    def resumable(self, *, account_id: str) -> Path | None:
        """The newest `NAME.part` this template could have produced; `{date}`, `{run_id}` match any.

        So a nightly `{date}` template resumes the file an interrupted run left yesterday.
        """
        return self._newest(account_id, PART_SUFFIX)

    def published(self, *, account_id: str) -> Path | None:
        """The newest published file this template could have produced for the account."""
        return self._newest(account_id, "")

    def _newest(self, account_id: str, suffix: str) -> Path | None:
        if self.is_stdout:
            return None
        wildcards = {"account_id": glob.escape(account_id), "date": _DATE_GLOB, "run_id": "*"}
        pattern = "".join(
            glob.escape(literal) + ("" if name is None else wildcards[name])
            for literal, name in self.parts
        )
        candidates = []
        for name in glob.glob(pattern + glob.escape(suffix)):
            try:
                candidates.append((os.stat(name).st_mtime_ns, name))
            except OSError:
                continue  # vanished between glob and stat
        return Path(max(candidates)[1]) if candidates else None


def part_path(path: str) -> Path:
    """Where a sweep writes before it publishes `path`."""
    return Path(path + PART_SUFFIX)
