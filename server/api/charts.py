"""Server-rendered SVG charts: nothing to download, nothing loaded from the internet, readable without JS.

Bars (satisfaction per unit or official), a monthly trend (satisfaction line over rating-count bars)
and a counter × hour heatmap. Every text is escaped; every mark has a <title> for its exact figure.
Satisfaction is 0..1 (server/dashboards.py) and drawn as a percentage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = 'font-family="system-ui, sans-serif" font-size="12"'
BAR_H = 22  # px per bar row: room for a 12 px label and a gap
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def colour(share: float | None) -> str:
    """Red (0) through amber (0.5) to green (1); grey when there are no ratings."""
    if share is None:
        return "#d0d7de"
    s = max(0.0, min(1.0, share))
    low, mid, high = (180, 35, 24), (214, 158, 46), (26, 127, 55)
    a, b, t = (low, mid, s * 2) if s < 0.5 else (mid, high, (s - 0.5) * 2)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    share: float | None  # 0..1
    note: str = ""  # e.g. "124 ratings"
    href: str | None = None


def bars(items: Sequence[Bar], *, title: str, width: int = 720) -> Markup:
    """Horizontal bars of satisfaction, one per item, with the figure at the end of each bar."""
    left, right = 220, 110
    plot = width - left - right
    height = 24 + BAR_H * max(1, len(items))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" {FONT}>', f"<title>{escape(title)}</title>"]
    for g in GRID:
        x = left + plot * g
        parts.append(f'<line x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{height}" stroke="#e1e4e8"/>'
                     f'<text x="{x:.1f}" y="11" text-anchor="middle" fill="#5b6773">{g * 100:.0f}%</text>')
    for i, item in enumerate(items):
        y = 20 + i * BAR_H
        w = plot * (item.share or 0)
        label = f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(item.label)}</text>'
        if item.href:
            label = f'<a href="{escape(item.href)}">{label}</a>'
        parts.append(label + f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{BAR_H - 6}" '
                     f'fill="{colour(item.share)}"><title>{escape(item.label)}: {pct(item.share)} '
                     f'{escape(item.note)}</title></rect>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 14}">{pct(item.share)} '
                     f'<tspan fill="#5b6773">{escape(item.note)}</tspan></text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped


@dataclass(frozen=True, slots=True)
class Month:
    label: str
    share: float | None
    count: int
    flagged: int = 0  # confirmed incidents that month


def trend(months: Sequence[Month], *, title: str, line_label: str, count_label: str, width: int = 720,
          height: int = 270) -> Markup:
    """Monthly satisfaction (line, left axis, %) over rating counts (bars scaled to the busiest month)."""
    left, right, top, bottom = 44, 12, 34, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    top_count = max([m.count for m in months] + [1])
    step = plot_w / max(1, len(months))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" {FONT}>', f"<title>{escape(title)}</title>",
             f'<line x1="{left}" y1="12" x2="{left + 18}" y2="12" stroke="#0b3d91" stroke-width="2.5"/>'
             f'<text x="{left + 24}" y="16">{escape(line_label)}</text>'
             f'<rect x="{left + 220}" y="6" width="14" height="12" fill="#c8d8f0"/>'
             f'<text x="{left + 240}" y="16">{escape(count_label)} (max {top_count})</text>']
    for g in GRID:
        y = top + plot_h * (1 - g)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e1e4e8"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6773">{g * 100:.0f}%</text>')
    points = []
    for i, m in enumerate(months):
        cx = left + step * (i + 0.5)
        bh = plot_h * m.count / top_count
        parts.append(f'<rect x="{cx - step * 0.3:.1f}" y="{top + plot_h - bh:.1f}" width="{step * 0.6:.1f}" '
                     f'height="{bh:.1f}" fill="#c8d8f0"><title>{escape(m.label)}: {m.count} '
                     f'{escape(count_label)}</title></rect>'
                     f'<text x="{cx:.1f}" y="{height - 18}" text-anchor="middle">{escape(m.label)}</text>')
        if m.flagged:
            parts.append(f'<text x="{cx:.1f}" y="{height - 4}" text-anchor="middle" fill="#b42318">⚑{m.flagged}</text>')
        if m.share is not None:
            points.append((cx, top + plot_h * (1 - m.share), m))
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#0b3d91" stroke-width="2.5"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour(m.share)}" stroke="#0b3d91">'
                     f'<title>{escape(m.label)}: {pct(m.share)}</title></circle>' for x, y, m in points)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped


def heatmap(rows: Sequence[tuple[str, Sequence[tuple[int, float | None] | None]]], hours: Sequence[int], *,
            title: str, width: int = 900) -> Markup:
    """Rows (counter label, cells per hour: (ratings, satisfaction) or None) × hours of the day."""
    left, top, cell_h = 180, 22, 30
    cell_w = (width - left) / max(1, len(hours))
    height = top + cell_h * max(1, len(rows)) + 4
    parts = [f'<svg class="chart heatmap" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" {FONT}>', f"<title>{escape(title)}</title>"]
    parts.extend(f'<text x="{left + cell_w * (i + 0.5):.1f}" y="14" text-anchor="middle" fill="#5b6773">{h}h</text>'
                 for i, h in enumerate(hours))
    for r, (label, cells) in enumerate(rows):
        y = top + r * cell_h
        parts.append(f'<text x="{left - 8}" y="{y + 19}" text-anchor="end">{escape(label)}</text>')
        for i, cell in enumerate(cells):
            x = left + cell_w * i
            n, share = cell if cell else (0, None)
            parts.append(f'<rect class="cell" x="{x + 1:.1f}" y="{y + 1}" width="{cell_w - 2:.1f}" '
                         f'height="{cell_h - 2}" fill="{colour(share)}" data-n="{n}"><title>{escape(label)}, '
                         f'{hours[i]}h: {pct(share)} ({n})</title></rect>')
            if n:
                parts.append(f'<text x="{x + cell_w / 2:.1f}" y="{y + 19}" text-anchor="middle" fill="#fff">{n}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
