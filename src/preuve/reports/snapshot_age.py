"""How old a target's newest snapshot was through a period, from what probes and drills recorded in the ledger.

An observation is a moment Preuve looked at the repository:

* a successful probe lists every snapshot: its ``newest_snapshot_time`` is the newest one (none: an empty
  repository). It may be older than what an earlier probe saw: the newest snapshots were deleted;
* a drill restored one snapshot (``snapshot_time``): a snapshot at least that new existed when the drill ran.

Between two observations the newest snapshot is the one the first saw, until a newer one the second saw was taken
(restic's snapshot time): that one existed from then on. Before the first observation nothing is known (the age is
null, never a guess); after the last one the age keeps growing from the newest snapshot seen, as far as anyone
knows. Failed probes saw nothing and are not observations.

From these steps: the age every ``step`` through the period (the chart's points, bounded: 745 for a month at one an
hour), the share of the observed part of the period during which the age stayed within the RPO (time-weighted,
computed exactly on the steps, not on the sampled points), the share of the period that was observed, the longest
stretch between two known snapshots (the one before the period included, the stretch open at its end counted up
to the end, as the RPO rule counts it), and the age at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from preuve.policies.rules._timeline import longest_between
from preuve.reports.values import iso_z, seconds

STEP = timedelta(hours=1)


@dataclass(frozen=True)
class Observation:
    at: datetime
    newest: datetime | None  # the newest snapshot's time as seen; None: no snapshot in the repository
    complete: bool  # True: a probe's full listing; False: a drill's snapshot (one at least that new existed)


MIN_OBSERVED = timedelta(hours=1)


@dataclass(frozen=True)
class AgeSummary:
    points: list[list[str | int | None]]  # [[ISO time, age in seconds or null], ...]
    # of the observed time, within the RPO; None: less than MIN_OBSERVED observed in the period (a drill a minute
    # before the period's end says nothing about how fresh the backups were through it)
    compliance_pct: float | None
    observed_pct: float | None  # of the period, after the first observation; None: an empty period
    longest_gap_s: int | None  # None: no snapshot known at all
    newest_age_at_end_s: int | None  # None: unknown, or no snapshot in the repository


Step = tuple[datetime, datetime | None]  # from this moment on, the newest snapshot is this one (None: none)


def steps(observations: Iterable[Observation]) -> list[Step]:
    """When the newest known snapshot changed, oldest first."""
    changes: list[Step] = []
    current: datetime | None = None
    previous: datetime | None = None  # the time of the previous observation
    for seen in sorted(observations, key=lambda o: o.at):
        newest = seen.newest
        if not seen.complete and current is not None and (newest is None or newest < current):
            newest = current  # a drill restoring an older snapshot says nothing about newer ones
        since = seen.at
        if previous is not None and newest is not None and (current is None or newest > current):
            # Taken after the previous look, it was there from its own time on; taken before it, from that look on.
            since = min(seen.at, max(newest, previous))
        if not changes or newest != current:
            changes.append((since, newest))
        current, previous = newest, seen.at
    return changes


def _base_at(changes: list[Step], moment: datetime) -> tuple[bool, datetime | None]:
    """(known, newest snapshot time) at ``moment``."""
    known, base = False, None
    for since, newest in changes:
        if since > moment:
            break
        known, base = True, newest
    return known, base


def summarize(
    observations: Iterable[Observation],
    start: datetime,
    end: datetime,
    rpo: timedelta,
    *,
    step: timedelta = STEP,
) -> AgeSummary:
    observed = list(observations)
    changes = steps(observed)
    length = end - start
    observed_time = within = timedelta(0)
    for index, (since, newest) in enumerate(changes):
        until = changes[index + 1][0] if index + 1 < len(changes) else end
        lo, hi = max(since, start), min(until, end)
        if hi <= lo:
            continue
        observed_time += hi - lo
        if newest is not None:
            # age = t - newest stays within the RPO while t <= newest + rpo
            within += max(timedelta(0), min(hi, newest + rpo) - lo)
    points: list[list[str | int | None]] = []
    moment = start
    cursor = 0
    base: datetime | None = None
    known = False
    while changes and moment <= end:  # nothing ever observed: no points rather than a line of nulls
        while cursor < len(changes) and changes[cursor][0] <= moment:
            known, base = True, changes[cursor][1]
            cursor += 1
        points.append([iso_z(moment), seconds(moment - base) if known and base is not None else None])
        if moment == end:
            break
        moment = min(moment + step, end)
    snapshots = sorted({o.newest for o in observed if o.newest is not None and o.newest <= end})
    gap = longest_between(snapshots, start, end) if snapshots or observed else None
    known_end, base_end = _base_at(changes, end)
    return AgeSummary(
        points=points,
        compliance_pct=round(100 * within / observed_time, 2) if observed_time >= MIN_OBSERVED else None,
        observed_pct=round(100 * observed_time / length, 2) if length else None,
        longest_gap_s=seconds(gap[1] - gap[0]) if gap is not None else None,
        newest_age_at_end_s=seconds(end - base_end) if known_end and base_end is not None else None,
    )
