"""The console script: signals are handled from the first instant, before the heavy imports."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import NoReturn

from collector.errors import EXIT_OUTPUT, EXIT_SIGNAL_BASE


def _stop(signum: int, _: FrameType | None) -> None:
    # Until the sweep's own handlers are installed there is nothing to save: end as a shell
    # reports a signal (128 + number), without a traceback.
    raise SystemExit(EXIT_SIGNAL_BASE + signum)


def main() -> NoReturn:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    from collector.cli import main as run

    code = run(sys.argv[1:])
    # Every command has written, published and closed its output by now. What is left is the
    # interpreter finalizing each module botocore and aiohttp loaded: a fifth of a second of
    # CPU per run that nothing needs, so the process ends here once its streams are flushed.
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started with the stream closed
                stream.flush()
    except (OSError, ValueError):  # a reader went away, or the stream was closed
        code = code or EXIT_OUTPUT  # standard output could not take the last lines
    os._exit(code)
