"""An inline SVG chart of the newest snapshot's age against the RPO: no JavaScript, no external library."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from preuve.web.fmt import age

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


def snapshot_age_svg(points: list[tuple[datetime, timedelta | None]], rpo: timedelta, title: str) -> str:
    """``points`` from :func:`preuve.web.data.age_series`; the RPO is drawn as a dashed red line."""
    if len(points) < 2:
        return ""
    start, end = points[0][0], points[-1][0]
    span = max((end - start).total_seconds(), 1.0)
    ages = [p[1].total_seconds() for p in points if p[1] is not None]
    top = max([*ages, rpo.total_seconds()]) * 1.15 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + (moment - start).total_seconds() / span * plot_w

    def y(seconds: float) -> float:
        return TOP + plot_h - seconds / top * plot_h

    segments: list[list[str]] = [[]]
    for moment, value in points:
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(f"{x(moment):.1f},{y(value.total_seconds()):.1f}")
    lines = "".join(
        f'<polyline points="{" ".join(seg)}" fill="none" stroke="#2563eb" stroke-width="1.5"/>'
        for seg in segments
        if len(seg) > 1
    )
    rpo_y = y(rpo.total_seconds())
    highest = top / 1.15
    ticks = "".join(
        f'<text x="{LEFT - 6}" y="{y(highest * f) + 4:.1f}" text-anchor="end">{escape(age(highest * f))}</text>'
        for f in (0.0, 0.5, 1.0)
    )
    anchors = ("start", "middle", "middle", "middle", "end")
    days = "".join(
        f'<text x="{x(start + (end - start) * i / 4):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
        f"{start + (end - start) * i / 4:%m-%d}</text>"
        for i, anchor in enumerate(anchors)
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="sans-serif" fill="#555">'
        f"<title>{escape(title)}</title>"
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{rpo_y:.1f}" y2="{rpo_y:.1f}" stroke="#dc2626" '
        f'stroke-dasharray="6 4"/><text x="{WIDTH - RIGHT - 4}" y="{rpo_y - 4:.1f}" text-anchor="end" '
        f'fill="#dc2626">RPO {escape(age(rpo))}</text>{lines}{ticks}{days}</svg>'
    )
