"""What `restic forget --keep-hourly/-daily/-weekly/-monthly/-yearly` keeps, computed the way restic does.

restic groups snapshots by host and paths, walks each group newest first, and for each unit with counts left keeps
a snapshot whose bucket (hour, day, ISO week, month, year of its own recorded time) differs from the last one kept
for that unit; the oldest snapshot is also kept while counts are left (restic 0.15+). Buckets use each snapshot's
time in the timezone it carries, as restic uses the client's local time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from preuve.policies.facts import SnapshotFact
from preuve.policies.model import RetentionRules
from preuve.policies.rules._common import source_of

Bucket = Callable[[datetime], str]


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


BUCKETS: dict[str, Bucket] = {
    "hourly": lambda t: f"{t:%Y-%m-%d %H}h",
    "daily": lambda t: f"{t:%Y-%m-%d}",
    "weekly": _week,
    "monthly": lambda t: f"{t:%Y-%m}",
    "yearly": lambda t: f"{t:%Y}",
}
UNITS = tuple(BUCKETS)


def counts(retention: RetentionRules) -> dict[str, int]:
    """The units the policy asks for, with their depth; units at 0 are not asked for."""
    declared = {unit: int(getattr(retention, unit)) for unit in UNITS}
    return {unit: n for unit, n in declared.items() if n > 0}


def groups(snapshots: Iterable[SnapshotFact]) -> dict[tuple[str, tuple[str, ...]], list[SnapshotFact]]:
    """Snapshots by source (host and paths), oldest first in each."""
    grouped: dict[tuple[str, tuple[str, ...]], list[SnapshotFact]] = defaultdict(list)
    for s in sorted(snapshots, key=lambda s: s.time):
        grouped[source_of(s)].append(s)
    return dict(grouped)


def kept(snapshots: Iterable[SnapshotFact], retention: RetentionRules) -> set[str]:
    """Ids that `restic forget` with these keep-* settings would keep among ``snapshots``."""
    keep: set[str] = set()
    for group in groups(snapshots).values():
        keep |= _kept_in_group(group, counts(retention))
    return keep


def _kept_in_group(oldest_first: list[SnapshotFact], depth: dict[str, int]) -> set[str]:
    left = dict(depth)
    last: dict[str, str | None] = dict.fromkeys(depth)
    keep: set[str] = set()
    newest_first = oldest_first[::-1]
    for nr, snapshot in enumerate(newest_first):
        oldest = nr == len(newest_first) - 1
        for unit in depth:
            if left[unit] <= 0:
                continue
            bucket = BUCKETS[unit](snapshot.time)
            if bucket != last[unit] or oldest:
                keep.add(snapshot.id)
                last[unit] = bucket
                left[unit] -= 1
    return keep


def elapsed(unit: str, first: datetime, at: datetime) -> int:
    """How many buckets of ``unit`` from the one holding ``first`` to the one holding ``at``, both included."""
    at = at.astimezone(first.tzinfo)
    if unit == "hourly":
        return (
            int(
                (
                    at.replace(minute=0, second=0, microsecond=0) - first.replace(minute=0, second=0, microsecond=0)
                ).total_seconds()
                // 3600
            )
            + 1
        )
    if unit == "daily":
        return (at.date() - first.date()).days + 1
    if unit == "weekly":
        monday = first.date().toordinal() - first.weekday()
        return (at.date().toordinal() - at.weekday() - monday) // 7 + 1
    if unit == "monthly":
        return (at.year * 12 + at.month) - (first.year * 12 + first.month) + 1
    return at.year - first.year + 1
