"""The console script: signals are handled from the first instant, before the heavy imports."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stop(signum: int, _: FrameType | None) -> None:
    # Until the sweep's own handlers are installed there is nothing to save: end as a shell
    # reports a signal (128 + number), without a traceback.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    from collector.cli import main as run

    return run(sys.argv[1:])
