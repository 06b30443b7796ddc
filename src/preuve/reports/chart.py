"""The freshness chart: age of the newest snapshot through the month, against the RPO, as inline SVG.

Plain SVG text, no script and no plotting library: it renders the same in WeasyPrint, in a browser and in the
web console, and it is part of the signed page. Where two measurements are far apart compared with the usual
spacing, the line is broken rather than drawn across the gap: a straight segment would claim values nobody measured.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from statistics import median

from preuve.reports.catalogue import text
from preuve.reports.formats import Lang, format_decimal, parse_instant

WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 26
AGE_COLOUR = "#1f5f99"
OVER_COLOUR = "#b3261e"
RPO_COLOUR = "#b3261e"
GRID_COLOUR = "#d9dde3"
GAP_FACTOR = 3.0  # a spacing this many times the usual one breaks the line


def _nice_step(span_h: float) -> float:
    """A y-axis step in hours giving about four gridlines: 1, 2, 3, 6, 12, 24, 48..."""
    for step in (1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 720):
        if span_h / step <= 5:
            return float(step)
    return float(math.ceil(span_h / 5 / 720) * 720)


def _segments(points: Sequence[tuple[datetime, float]]) -> list[list[tuple[datetime, float]]]:
    if len(points) < 3:
        return [list(points)] if points else []
    spacings = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(points)]
    usual = max(median(spacings), 1.0)
    segments: list[list[tuple[datetime, float]]] = [[points[0]]]
    for previous, point in itertools.pairwise(points):
        if (point[0] - previous[0]).total_seconds() > GAP_FACTOR * usual:
            segments.append([])
        segments[-1].append(point)
    return segments


def freshness_svg(
    raw_points: Sequence[Sequence[object]], rpo_s: float | None, start: datetime, end: datetime, lang: Lang
) -> str | None:
    """The chart, or ``None`` when there is no measurement to draw (the page then says "unknown")."""
    points = sorted(
        (parse_instant(str(p[0])), float(p[1]))  # JSON: [iso instant, seconds]
        for p in raw_points
        if len(p) == 2 and isinstance(p[1], int | float) and not isinstance(p[1], bool)
    )
    if not points:
        return None
    span_s = max((end - start).total_seconds(), 1.0)
    top_h = max(max(age for _, age in points), rpo_s or 0.0) * 1.15 / 3600 or 1.0
    step_h = _nice_step(top_h)
    top_h = math.ceil(top_h / step_h) * step_h
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        share = min(max((moment - start).total_seconds() / span_s, 0.0), 1.0)
        return LEFT + share * plot_w

    def y(age_s: float) -> float:
        return TOP + plot_h - min(age_s / 3600 / top_h, 1.0) * plot_h

    title = escape(text(lang, "chart.caption", rpo=""))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}" font-family="DejaVu Sans, sans-serif" '
        'font-size="10">'
    ]
    hours = 0.0
    while hours <= top_h + 1e-9:
        gy = y(hours * 3600)
        parts.append(f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}" stroke="{GRID_COLOUR}"/>')
        parts.append(f'<text x="{LEFT - 5}" y="{gy + 3:.1f}" text-anchor="end">{format_decimal(hours, lang)}</text>')
        hours += step_h
    parts.append(f'<text x="4" y="{TOP + 8}" fill="#555">h</text>')  # hours: the same symbol in both languages
    days = max(round(span_s / 86400), 1)
    for day in range(0, days + 1, 7 if days > 10 else 1):
        moment_x = LEFT + day / days * plot_w
        parts.append(f'<line x1="{moment_x:.1f}" y1="{TOP + plot_h}" x2="{moment_x:.1f}" y2="{TOP + plot_h + 4}" '
                     'stroke="#555"/>')  # fmt: skip
        label = str((start + timedelta(days=day)).day) if day < days else ""
        parts.append(f'<text x="{moment_x:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{label}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#555"/>')
    for segment in _segments(points):
        coords = " ".join(f"{x(m):.1f},{y(a):.1f}" for m, a in segment)
        if len(segment) == 1:
            m, a = segment[0]
            parts.append(f'<circle cx="{x(m):.1f}" cy="{y(a):.1f}" r="2" fill="{AGE_COLOUR}"/>')
        else:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{AGE_COLOUR}" stroke-width="1.5"/>')
    if rpo_s:
        for moment, age in points:
            if age > rpo_s:
                parts.append(f'<circle cx="{x(moment):.1f}" cy="{y(age):.1f}" r="1.8" fill="{OVER_COLOUR}"/>')
        ry = y(rpo_s)
        parts.append(
            f'<line x1="{LEFT}" y1="{ry:.1f}" x2="{WIDTH - RIGHT}" y2="{ry:.1f}" stroke="{RPO_COLOUR}" '
            'stroke-width="1.2" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{WIDTH - RIGHT - 2}" y="{ry - 4:.1f}" text-anchor="end" fill="{RPO_COLOUR}">'
            f"{escape(text(lang, 'chart.rpo'))}</text>"
        )
    parts.append(
        f'<text x="{LEFT + 6}" y="{TOP + 10}" fill="{AGE_COLOUR}">{escape(text(lang, "chart.age"))}</text></svg>'
    )
    return "".join(parts)
