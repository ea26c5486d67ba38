"""Tests of logging setup (JSON/console, levels, redaction) and of the progress line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import structlog

from collector.logs import MASK, QUIET_LOGGERS, configure_logging, mask_text
from collector.progress import ProgressSnapshot, render, show_progress

# Recognisable fakes in the shape of real credentials (AWS's documented example key).
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE" + "AbCdEf0123456789+/" * 12


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def emit_secrets() -> None:
    log = structlog.get_logger()
    log.info(
        "collector.aws.client_created",
        aws_secret_access_key=SECRET_KEY,
        session_token=SESSION_TOKEN,
        Credentials={"SecretAccessKey": SECRET_KEY, "AccessKeyId": "AKIAIOSFODNN7EXAMPLE"},
        detail=f"signing with {SECRET_KEY} and token={SESSION_TOKEN}",
        params=[{"password": "hunter2"}],
    )
    try:
        raise RuntimeError(f"bad key {SECRET_KEY}")
    except RuntimeError:
        log.exception("collector.aws.failed")
    logging.getLogger("botocore.credentials").warning("found key %s", SECRET_KEY)


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(text) for text in err.splitlines() if text.strip()]


def test_json_mode_emits_parseable_lines_without_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """JSON lines on stderr; secret-named keys are ***, secret-shaped text is masked."""
    configure_logging("info", json=True)
    emit_secrets()
    err = capsys.readouterr().err
    assert SECRET_KEY not in err
    assert SESSION_TOKEN[:40] not in err
    assert "hunter2" not in err
    first, failed, foreign = json_lines(err)
    assert first["event"] == "collector.aws.client_created"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert first["aws_secret_access_key"] == MASK
    assert first["session_token"] == MASK
    assert first["Credentials"] == MASK
    assert first["detail"] == "signing with *** and token=***"
    assert first["params"] == [{"password": "***"}]
    assert failed["event"] == "collector.aws.failed"
    assert "RuntimeError: bad key ***" in failed["exception"]
    assert foreign["event"] == "found key ***"
    assert foreign["logger"] == "botocore.credentials"


def test_console_mode_hides_secrets_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The readable console renderer gets the same redaction, tracebacks included."""
    configure_logging("info", json=False)
    emit_secrets()
    err = capsys.readouterr().err
    assert "collector.aws.client_created" in err
    assert "RuntimeError: bad key ***" in err
    assert SECRET_KEY not in err
    assert "hunter2" not in err
    with pytest.raises(ValueError):
        json.loads(err.splitlines()[0])


def test_json_is_chosen_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """json=None picks JSON for a captured (non-terminal) stderr."""
    configure_logging("info")
    structlog.get_logger().info("collector.sweep.started", principals=3)
    (record,) = json_lines(capsys.readouterr().err)
    assert record["principals"] == 3


def test_levels_context_and_quiet_libraries(capsys: pytest.CaptureFixture[str]) -> None:
    """The level filters events, bound context is merged, botocore INFO stays silent."""
    configure_logging("warning", json=True)
    structlog.contextvars.bind_contextvars(run_id="r-1")
    log = structlog.get_logger()
    log.info("collector.poll.job_done")
    log.warning("collector.poll.job_slow", polls=7)
    configure_logging("debug", json=True)
    log.debug("collector.poll.job_done", polls=2)
    logging.getLogger("botocore.endpoint").info("request sent")
    logging.getLogger("urllib3.connectionpool").debug("connection")
    events = json_lines(capsys.readouterr().err)
    assert [(e["event"], e["run_id"], e["polls"]) for e in events] == [
        ("collector.poll.job_slow", "r-1", 7),
        ("collector.poll.job_done", "r-1", 2),
    ]
    assert len([h for h in logging.getLogger().handlers if "Collector" in type(h).__name__]) == 1


def test_mask_text_spares_ordinary_identifiers() -> None:
    """ARNs, job ids, hex digests and access key ids are not mistaken for secrets."""
    ordinary = (
        "arn:aws:iam::123456789012:role/service-role/deployer "
        "job 2f0c9e8a-1b7d-4c3e-9f5a-6d2b8c4e1a70 "
        "sha1 3f786850e387550fdab836ed7e6dc881de23001b AKIAIOSFODNN7EXAMPLE"
    )
    assert mask_text(ordinary) == ordinary
    assert mask_text(f"k={SECRET_KEY}.") == "k=***."


def test_progress_redraws_then_erases_on_cancel() -> None:
    """The status line is redrawn in place and erased when the display is cancelled."""
    stream = io.StringIO()
    snaps = iter(range(1000))

    def snapshot() -> ProgressSnapshot:
        done = next(snaps)
        return ProgressSnapshot(300, done, 42, 18.25, 3, 1)

    async def main() -> None:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(show_progress, snapshot, stream, 0.01)
                await anyio.sleep(0.05)
                tg.cancel_scope.cancel()

    anyio.run(main)
    text = stream.getvalue()
    assert text.startswith("\r\x1b[2K" + render(ProgressSnapshot(300, 0, 42, 18.25, 3, 1)))
    assert "principals 1/300 | jobs in flight 42 | 18.2 calls/s | throttled 3 | errors 1" in text
    assert text.endswith("\r\x1b[2K")
    assert "\n" not in text
