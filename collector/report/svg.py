"""Inline SVG charts, drawn here so the HTML report needs no script and no network."""

from __future__ import annotations

from html import escape

from collector.report.model import Bars

PALETTE = {
    "unused": "#d1495b",
    "used": "#66a182",
    "user": "#4e79a7",
    "group": "#f28e2b",
    "role": "#59a14f",
    "policy": "#b07aa1",
}
_FALLBACK = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#edc948")

_LABEL_W = 190
_BAR_W = 360
_VALUE_W = 70
_ROW_H = 24
_TOP = 34


def _color(part: str, index: int) -> str:
    return PALETTE.get(part, _FALLBACK[index % len(_FALLBACK)])


def _fmt(value: float, unit: str) -> str:
    return f"{value:.0%}" if unit == "share" else f"{value:,.0f}"


def bar_chart(bars: Bars) -> str:
    """Horizontal stacked bars, one row per label, with a legend and a value per row.

    For `unit == "share"` the first part's value is printed (e.g. the unused share);
    otherwise the row's total.
    """
    parts = [name for name, values in bars.parts.items() if any(values)] or list(bars.parts)
    totals = [sum(bars.parts[p][i] for p in parts) for i in range(len(bars.labels))]
    scale = 1.0 if bars.unit == "share" else max(totals, default=0.0) or 1.0
    height = _TOP + _ROW_H * max(len(bars.labels), 1) + 10
    width = _LABEL_W + _BAR_W + _VALUE_W
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(bars.title)}">'
    ]
    x = _LABEL_W
    for index, part in enumerate(parts):  # legend
        out.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{_color(part, index)}"/>'
            f'<text x="{x + 16}" y="16" class="legend">{escape(part)}</text>'
        )
        x += 24 + 7 * len(part)
    if not bars.labels:
        out.append(f'<text x="{_LABEL_W}" y="{_TOP + 16}" class="label">no data</text>')
    for row, label in enumerate(bars.labels):
        y = _TOP + row * _ROW_H
        out.append(
            f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end" class="label">'
            f"{escape(label)}</text>"
        )
        x0 = float(_LABEL_W)
        for index, part in enumerate(parts):
            value = bars.parts[part][row]
            w = _BAR_W * value / scale
            if w > 0:
                out.append(
                    f'<rect x="{x0:.1f}" y="{y + 3}" width="{w:.1f}" height="{_ROW_H - 6}" '
                    f'fill="{_color(part, index)}"><title>{escape(label)}: {escape(part)} '
                    f"{_fmt(value, bars.unit)}</title></rect>"
                )
            x0 += w
        shown = bars.parts[parts[0]][row] if bars.unit == "share" else totals[row]
        out.append(
            f'<text x="{_LABEL_W + _BAR_W + 8}" y="{y + 15}" class="value">'
            f"{_fmt(shown, bars.unit)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
