"""Bar charts as inline SVG, drawn on the server: no JavaScript, no CDN, nothing fetched by the browser.

Pure functions of integer centimes; every label is escaped. Heights are proportional to the values (the
only float arithmetic here is the drawing's geometry, never a sum of money)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from epay.finance_web.money import dzd

WIDTH = 760
HEIGHT = 300
EMPTY_HEIGHT = 60  # an empty chart: its title and a line saying why
LEFT, RIGHT, TOP, BOTTOM = 96, 16, 48, 64


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[int]  # centimes, one per category


def _scale_top(largest: int) -> int:
    """A round top for the axis (centimes), at least the largest value."""
    if largest <= 0:
        return 100
    step = 1
    while step * 10 <= largest:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= largest:
            return step * factor
    return step * 10  # pragma: no cover - unreachable


def _short_dzd(centimes: int) -> str:
    """An axis label: exact, shortened for large values (1.5 M, 250 k, 12.5)."""
    dinars = Decimal(centimes).scaleb(-2)
    if dinars >= 1_000_000:
        return f"{(dinars / 1_000_000).normalize():f} M"
    if dinars >= 1_000:
        return f"{(dinars / 1_000).normalize():f} k"
    return f"{dinars.normalize():f}" if dinars else "0"


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    chart_id: str = "chart",
    hints: Sequence[str] | None = None,
) -> str:
    """Grouped bars: one group per category, one bar per series; amounts in centimes, axis in DZD.
    Category labels are written under their group (turned when there are many); ``hints`` (one per
    category) go into each bar's tooltip."""
    for one in series:
        if len(one.values) != len(categories):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(categories)}")
    largest = max((v for one in series for v in one.values), default=0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    if not categories or largest <= 0:  # no axis for nothing: never "1 DZD, 0 DZD, 0 DZD"
        message = "no data" if not categories else "nothing to draw: every amount is 0.00 DZD"
        parts[0] = parts[0].replace(f"0 0 {WIDTH} {HEIGHT}", f"0 0 {WIDTH} {EMPTY_HEIGHT}")
        parts.append(f'<text class="empty" x="{LEFT}" y="44" fill="#666">{escape(message)}</text></svg>')
        return "".join(parts)
    top = _scale_top(largest)
    for tick in range(5):  # horizontal grid and axis labels
        value = top * tick // 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{escape(_short_dzd(value))} DZD</text>"
        )
    group_w = plot_w / len(categories)
    bar_w = max(2.0, min(40.0, group_w * 0.8 / max(1, len(series))))
    turn = len(categories) > 6 or max(len(c) for c in categories) * 7 > group_w
    for i, category in enumerate(categories):
        x0 = LEFT + i * group_w + (group_w - bar_w * len(series)) / 2
        for j, one in enumerate(series):
            value = one.values[i]
            h = plot_h * value / top
            x = x0 + j * bar_w
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                f'height="{h:.1f}" fill="{escape(one.colour)}">'
                f"<title>{escape(category)}{escape(' ' + hints[i] if hints else '')} — "
                f"{escape(one.name)}: {escape(dzd(value))}</title></rect>"
            )
        label_x, label_y = LEFT + i * group_w + group_w / 2, TOP + plot_h + 14
        turned = f' transform="rotate(-35 {label_x:.1f} {label_y})"' if turn else ""
        parts.append(
            f'<text x="{label_x:.1f}" y="{label_y}" font-size="11" '
            f'text-anchor="{"end" if turn else "middle"}"{turned}>{escape(category)}</text>'
        )
    for j, one in enumerate(series):  # legend, under the title
        x = LEFT + 120 * j
        parts.append(
            f'<rect x="{x}" y="25" width="12" height="12" fill="{escape(one.colour)}"/>'
            f'<text x="{x + 16}" y="35" font-size="12">{escape(one.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
