"""Arithmetic on spans of time: what part of a period a set of intervals covers, and the longest gap between events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import pairwise

Span = tuple[datetime, datetime]


def merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping or touching spans joined; empty ones dropped; sorted."""
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def clip(spans: Iterable[Span], start: datetime, end: datetime) -> list[Span]:
    return [(max(s, start), min(e, end)) for s, e in merge(spans) if s < end and e > start]


def total(spans: Iterable[Span]) -> timedelta:
    return sum((e - s for s, e in merge(spans)), timedelta(0))


def gaps(spans: Iterable[Span], start: datetime, end: datetime) -> list[Span]:
    """The parts of [start, end] no span covers."""
    holes: list[Span] = []
    cursor = start
    for s, e in clip(spans, start, end):
        if s > cursor:
            holes.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < end:
        holes.append((cursor, end))
    return holes


def longest_between(events: Sequence[datetime], start: datetime, end: datetime) -> Span:
    """The longest stretch without an event that overlaps [start, end].

    It begins at the last event at or before ``start`` (its full length counts: a backup missing since long before
    the period is a long gap, not a short one), else at ``start`` (nothing is known before); the stretch still open
    at ``end`` counts up to ``end``.
    """
    ordered = sorted(events)
    before = [t for t in ordered if t <= start]
    points = [before[-1] if before else start, *(t for t in ordered if start < t <= end), end]
    return max(pairwise(points), key=lambda pair: pair[1] - pair[0])
