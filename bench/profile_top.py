"""Top rows of a py-spy profile (`py-spy record --format raw`): functions by samples on stack."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

# The event loop's own frames: every sample of the sweep's work has them on its stack.
LOOP = "Handle._run (asyncio/events.py)"


def _frame(text: str) -> str:
    """`function (file.py:line)` without the line: one row per function, not per call site."""
    name, _, where = text.rpartition(" (")
    return f"{name} ({where.split(':')[0].rstrip(')')})"


def top_rows(collapsed: str, within: str, count: int) -> tuple[int, list[tuple[str, int, int]]]:
    """The samples with `within` on the stack, and the functions on their stacks: (function,
    samples with it on the stack, samples in it), most on the stack first, without the
    frames that are on every one of them (the loop itself, the CLI)."""
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    selected = 0
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        frames = [_frame(frame) for frame in stack.split(";")]
        if within not in frames:
            continue
        selected += int(samples)
        for frame in set(frames):
            total[frame] += int(samples)
        own[frames[-1]] += int(samples)
    rows = [
        (frame, samples, own[frame]) for frame, samples in total.most_common() if samples < selected
    ]
    return selected, rows[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_top", description=__doc__)
    parser.add_argument("profile", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument(
        "--within", default=LOOP, help=f"only stacks with this frame (default: {LOOP!r})"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    text = args.profile.read_text(encoding="utf-8")
    selected, rows = top_rows(text, args.within, args.rows)
    print(f"samples within {args.within}: {selected}")
    print("| function | on stack | own |")
    print("|---|--:|--:|")
    for frame, samples, own in rows:
        print(f"| `{frame}` | {100 * samples / selected:.1f}% | {100 * own / selected:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
