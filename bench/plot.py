"""calls.png: calls per second per operation over a sweep, against the account's limits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine

import matplotlib.pyplot as plt

from bench.limit import ENTITIES, GENERATE, GET, LISTS
from bench.results import ToolResult

# What each line shows, and its colour: List* operations are summed into one line.
LINES = (
    (GENERATE, "Generate", "tab:blue"),
    (GET, "Get", "tab:orange"),
    (ENTITIES, "GetWithEntities", "tab:green"),
    ("List", "List* (all four)", "tab:purple"),
)


def _per_second(calls: Sequence[Mapping[str, Any]]) -> tuple[dict[str, dict[int, int]], int]:
    served: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    end = 0
    for row in calls:
        name = "List" if row["operation"] in LISTS.values() else row["operation"]
        key = name if row["outcome"] == "served" else "throttled"
        served[key][row["t"]] += row["calls"]
        end = max(end, row["t"])
    return served, end


def draw(
    path: Path,
    panels: Sequence[tuple[ToolResult, Sequence[Mapping[str, Any]]]],
    rates: Mapping[str, float],
) -> None:
    """One panel per (tool result, its per-second emulator counts), sharing both axes."""
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(11, 3.6 * len(panels)), sharex=True, sharey=True
    )
    axes_list = list(axes) if len(panels) > 1 else [axes]
    limits: dict[float, list[str]] = defaultdict(list)
    for operation, label, _ in LINES[:3]:
        limits[rates[operation]].append(label)
    limits[min(rates[op] for op in LISTS.values())].append("each List*")
    for ax, (result, calls) in zip(axes_list, panels, strict=True):
        series, end = _per_second(calls)
        seconds = list(range(end + 2))
        for key, label, colour in LINES:
            if key in series:
                values = [series[key].get(t, 0) for t in seconds]
                ax.step(seconds, values, where="post", color=colour, label=label, linewidth=1.4)
        if "throttled" in series:
            values = [series["throttled"].get(t, 0) for t in seconds]
            ax.bar(
                seconds,
                values,
                width=1.0,
                align="edge",
                color="tab:red",
                alpha=0.35,
                label=f"throttled, all operations (peak {max(values)}/s)",
            )
        for rate, names in sorted(limits.items()):
            ax.axhline(
                rate,
                color="black",
                linestyle="--" if rate == max(limits) else ":",
                linewidth=0.9,
                label=f"limit {rate:g}/s: {', '.join(names)}",
            )
        scope = (
            f"{result.principals_run:,}-principal subset"
            if result.subset
            else f"{result.principals_run:,} principals"
        )
        efficiency = result.efficiency
        title = f"{result.label.strip('*')}: {scope}, {result.wall:.1f} s"
        if efficiency is not None and not result.subset:
            title += f", efficiency {efficiency:.2f}"
        ax.set_title(title, loc="left", fontsize=11)
        ax.set_ylabel("calls per second")
        ax.grid(alpha=0.25)
        ax.legend(loc="upper right", fontsize=8, ncols=2)
    axes_list[-1].set_xlabel("seconds since the tool started (emulator-side counts)")
    # Room for the legend above the limits; taller throttle bars are cut (their peak is named).
    axes_list[0].set_ylim(0, max(rates.values()) * 1.9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
