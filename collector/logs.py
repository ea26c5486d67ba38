"""structlog setup: JSON lines off a terminal, console lines on one, credentials always redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Their DEBUG/INFO output is request plumbing (and signed headers), not sweep events.
QUIET_LOGGERS = ("botocore", "aiobotocore", "urllib3", "boto3", "s3transfer")
MASK = "***"

# Key words (split on `_`/`-`, lowercased) whose values are credentials.
_SECRET_WORDS = frozenset(
    {
        "secret",
        "token",
        "password",
        "passwd",
        "credential",
        "credentials",
        "authorization",
        "signature",
        "secretaccesskey",
        "sessiontoken",
        "secretkey",
        "apikey",
    }
)
# A run of base64 characters the length of an AWS secret access key (40) ...
_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")
# ... or as long as a session token (hundreds of characters); nothing else we log is.
_SESSION_TOKEN = re.compile(r"[A-Za-z0-9/+]{100,}={0,2}")


def _is_secret_key(key: object) -> bool:
    words = re.split(r"[_\-\s.]+", str(key).lower())
    return any(word in _SECRET_WORDS for word in words) or str(key).lower() in _SECRET_WORDS


def _looks_random(text: str) -> bool:
    # Secret keys are random: upper, lower and digits all appear. That spares hex digests
    # and long lowercase names of the same length.
    return (
        any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    )


def mask_text(text: str) -> str:
    """`text` with anything shaped like an AWS secret key or session token replaced by ***."""
    text = _SESSION_TOKEN.sub(MASK, text)
    return _SECRET_KEY.sub(lambda m: MASK if _looks_random(m.group()) else m.group(), text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return _redact(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, int | float | bool) or value is None:
        return value
    # Anything else is rendered by repr() later; mask that text now.
    return mask_text(repr(value))


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor: credential-named keys become ***, credential-shaped strings are masked."""
    return {
        # exc_info stays an exception for format_exc_info, whose text is redacted after it.
        key: value if key == "exc_info" else MASK if _is_secret_key(key) else _redact(value)
        for key, value in event_dict.items()
    }


# aiobotocore logs every failed credential refresh as a warning with its traceback; the org
# layer logs one line per account instead (collector.credentials.refresh_failed).
_REFRESH_LOGGERS = ("botocore.credentials", "aiobotocore.credentials")


def _not_a_refresh_failure(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Refreshing temporary credentials failed")


class _CollectorHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs, so a second call replaces it, not adds one."""

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream.isatty():
            # Erase the live progress line first, so an event never lands in the middle of it.
            self.stream.write("\r\x1b[2K")
        super().emit(record)


def configure_logging(level: str, *, json: bool | None = None) -> None:
    """Route structlog and stdlib logging to stderr; `json=None` picks JSON when not a terminal."""
    levelno = LEVELS[level.lower()]
    stream = sys.stderr
    if json is None:
        json = not stream.isatty()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before redaction so they are masked too.
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = _CollectorHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CollectorHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(levelno)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, levelno))
    for name in _REFRESH_LOGGERS:
        refresh_logger = logging.getLogger(name)
        if _not_a_refresh_failure not in refresh_logger.filters:
            refresh_logger.addFilter(_not_a_refresh_failure)
    structlog.configure(
        # Redacted here as well, so no other handler on the root logger sees a raw event.
        processors=[*shared, redact, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        # Not cached: a reconfiguration (tests, CLI) must reach loggers already handed out.
        cache_logger_on_first_use=False,
    )
