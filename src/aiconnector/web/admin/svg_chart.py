"""A bar chart drawn on the server as inline SVG: requests over time on the connection page.

No chart library and no script: the page's CSP allows scripts only from this site, and a
few dozen rectangles are cheaper to send than any library. The SVG scales to the width of
its container (``viewBox`` + ``width=100%``) so it stays readable at 390 px, and carries a
text alternative (``role=img`` + ``<title>``/``<desc>``) for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 220
PAD_LEFT = 40
PAD_RIGHT = 10
PAD_TOP = 12
PAD_BOTTOM = 34
BAR = "#1f5fbf"
GRID = "#dfe3ea"
INK = "#5b6475"


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str  # short axis label ("14:00", "Mar 3")
    title: str  # full description for the tooltip ("2025-03-03 14:00–15:00 UTC")
    count: int


def _nice_max(value: int) -> int:
    """A round top for the y axis (1, 2, 5, 10, 20, 50…) so gridlines land on whole numbers."""
    decade = 1
    while True:
        for step in (1, 2, 5):
            if decade * step >= value:
                return decade * step
        decade *= 10


def bar_chart(buckets: Sequence[Bucket], *, title: str, label_every: int = 1) -> Markup:
    """The chart as SVG markup. ``label_every`` thins the x labels (every 4th hour…)."""
    total = sum(b.count for b in buckets)
    top = _nice_max(max((b.count for b in buckets), default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(buckets), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{total} requests in total; busiest period '
        f"{max((b.count for b in buckets), default=0)} requests.</desc>",
    ]
    for fraction in (0, 0.5, 1) if top > 1 else (0, 1):
        y = PAD_TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{INK}">{round(top * fraction)}</text>'
        )
    for i, bucket in enumerate(buckets):
        x = PAD_LEFT + i * slot
        h = plot_h * bucket.count / top
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{PAD_TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" rx="2" fill="{BAR}"><title>{escape(bucket.title)}: '
            f"{bucket.count} requests</title></rect>"
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle" '
                f'font-size="11" fill="{INK}">{escape(bucket.label)}</text>'
            )
    if total == 0:
        parts.append(
            f'<text x="{PAD_LEFT + plot_w / 2:.1f}" y="{PAD_TOP + plot_h / 2:.1f}" text-anchor="middle" '
            f'font-size="14" fill="{INK}">No requests in this period</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers, constants and escape()d text only
