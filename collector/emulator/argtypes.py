"""argparse value types of `collector emulate`: one line saying what was expected."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _checked(
    convert: Callable[[str], float], accept: Callable[[float], bool], expected: str
) -> Callable[[str], float]:
    """A value type: `convert`, then `accept`, else an error saying what was `expected`."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = -1
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


count = _checked(int, lambda v: v >= 0, "a count >= 0")
seconds = _checked(float, lambda v: v >= 0, "seconds >= 0")
share = _checked(float, lambda v: 0.0 <= v <= 1.0, "a share within 0..1")
