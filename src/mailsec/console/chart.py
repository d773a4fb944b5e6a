"""The dashboard's volume chart as server-made SVG: stacked bars of messages per disposition per bucket. No script
and no inline CSS (the console's CSP allows neither): colours are SVG presentation attributes, and every bar has a
<title> so a pointer or a screen reader reads its figures; the page also shows the same numbers as a table."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from mailsec.model import Disposition
from mailsec.store.dashboard import Bucket, VolumeBucket

# Worst first, as the legend reads; colours keep 3:1 contrast against the white background (WCAG 1.4.11).
COLOURS = {
    Disposition.MALICIOUS_BEC.value: "#7a0019",
    Disposition.MALICIOUS.value: "#c0142f",
    Disposition.SUSPICIOUS.value: "#b35900",
    Disposition.SPOOF.value: "#8a4fbf",
    Disposition.SPAM.value: "#806600",
    Disposition.BULK.value: "#2a6f97",
    Disposition.ENCRYPTED.value: "#4d4d4d",
    Disposition.EXTERNAL.value: "#5c6b00",
    Disposition.UNKNOWN.value: "#6b6b6b",
    Disposition.NONE.value: "#2e7d32",
}
ORDER = list(COLOURS)
WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 40


@dataclass(frozen=True)
class Legend:
    disposition: str
    colour: str
    total: int


def _nice_max(value: int) -> int:
    """The top of the y axis: four equal whole steps of 1, 2 or 5 times a power of ten, at or above `value`."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m * 4 >= value:
                return step * m * 4
        step *= 10


def _label(bucket: VolumeBucket, width: Bucket) -> str:
    return bucket.start.strftime("%Y-%m-%d %H:00" if width is Bucket.HOUR else "%Y-%m-%d")


def legend(volume: list[VolumeBucket]) -> list[Legend]:
    totals = {d: sum(b.counts.get(d, 0) for b in volume) for d in ORDER}
    return [Legend(d, COLOURS[d], n) for d, n in totals.items() if n]


def volume_svg(volume: list[VolumeBucket], width: Bucket, title: str) -> str:
    """The chart as an SVG document fragment, safe to put in a page as it is (every text escaped)."""
    peak = _nice_max(max((b.total for b in volume), default=0) or 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(volume))
    bar = max(1.0, slot * 0.8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="volume-title" class="chart" preserveAspectRatio="xMidYMid meet">',
        f'<title id="volume-title">{escape(title)}</title>',
    ]
    for i in range(5):
        value = peak * i // 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d0d0"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#333">{value:,}</text>'
        )
    label_every = max(1, len(volume) // 8)
    for i, b in enumerate(volume):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        figures = ", ".join(f"{d} {b.counts[d]:,}" for d in ORDER if b.counts.get(d))
        parts.append(f"<g><title>{escape(_label(b, width))}: {escape(figures or 'no mail')}</title>")
        for d in reversed(ORDER):  # NONE at the bottom, the worst on top
            n = b.counts.get(d, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" fill="{COLOURS[d]}"/>'
            )
        parts.append("</g>")
        if i % label_every == 0:
            text = b.start.strftime("%H:00" if width is Bucket.HOUR else "%m-%d")
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                f'fill="#333">{escape(text)}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#555"/></svg>'
    )
    return "".join(parts)
