"""The benchmark's emulator process: serve, write the ground truth, keep call counts on disk."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from collector.emulator import (
    Emulator,
    Organization,
    command,
    running_emulator,
    running_organization,
)
from collector.emulator.orgcommand import org_options_from
from collector.emulator.stats import ServedCalls, recording

# How often the per-second counts are rewritten while the server runs.
STATS_INTERVAL = 0.5


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; stdout's first line is the endpoint, after the truth."""
    parser = argparse.ArgumentParser(prog="python -m bench.emulator_proc")
    command.add_arguments(parser)
    parser.add_argument("--ground-truth", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--stats", type=Path, required=True, help="JSON file of call counts")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    options = command.options_from(args)
    org = org_options_from(args, options)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    stats = ServedCalls()
    with recording(stats):
        serving = running_organization(org) if org else running_emulator(options)
        with serving as emulator:
            # Written before the endpoint is announced: a client that sees the URL can score.
            with args.ground_truth.open("w", encoding="utf-8") as out:
                for record in _truth(emulator):
                    out.write(json.dumps(record, separators=(",", ":")) + "\n")
            stats.write(args.stats)
            print(emulator.endpoint, flush=True)
            # Rewritten even when nothing changed: a fresh file tells a reader the counts it
            # sees include every call made before it looked.
            while not stop.wait(STATS_INTERVAL):
                stats.write(args.stats)
            stats.write(args.stats)
    return 0


def _truth(emulator: Emulator | Organization) -> Iterator[dict[str, Any]]:
    """The account's records, or every account's of an organisation (each names its own)."""
    if isinstance(emulator, Emulator):
        yield from emulator.ground_truth()
        return
    for account in emulator.layout.accounts:
        yield from emulator.ground_truth(account.id)


if __name__ == "__main__":
    sys.exit(main())
