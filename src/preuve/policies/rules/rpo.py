"""RPO: how old the newest snapshot is now, and what share of the period a snapshot younger than the RPO existed.

The history counts every snapshot ever listed, forgotten ones included: a snapshot pruned today still protected
the days after it was taken. A snapshot stops counting when a listing no longer shows it, so deleting the
newest snapshots opens a gap, as it would for a real restore.

Time is judged only where Preuve was looking: an uncovered stretch between the first and the last listing of
the repository is a fact (violated); one before the first listing or after the last one might hold snapshots
nobody saw (unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from preuve.policies.facts import ANSSI, HDS, ISO27001, NIS2, RuleResult, SnapshotFact, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules import _timeline as timeline
from preuve.policies.rules._common import (
    human,
    listings,
    per_target,
    percent,
    present_at,
    result,
    seconds,
    short,
    taken_by,
    when,
    worst,
)

RULE = "rpo"
REFERENCES = (ISO27001, NIS2, ANSSI, HDS)


@dataclass(frozen=True)
class History:
    share: float | None  # of the period with a snapshot younger than the RPO; None for an empty period
    uncovered: timedelta  # time over the RPO within the period
    seen_uncovered: timedelta  # ... of which between the first and the last listing: certain
    gap: timeline.Span  # longest stretch between two snapshots


def fresh_spans(snapshots: list[SnapshotFact], rpo: timedelta) -> list[timeline.Span]:
    """While each snapshot was younger than the RPO and still in the repository."""
    spans = []
    for s in snapshots:
        end = s.time + rpo
        if s.gone_at is not None:
            end = min(end, s.gone_at)
        spans.append((s.time, end))
    return spans


def history(snapshots: list[SnapshotFact], rpo: timedelta, period: Period, seen: list[datetime]) -> History:
    spans = fresh_spans(snapshots, rpo)
    holes = timeline.gaps(spans, period.start, period.end)
    uncovered = timeline.total(holes)
    seen_uncovered = timeline.total(timeline.clip(holes, min(seen), max(seen))) if seen else timedelta(0)
    length = period.length
    share = (length - uncovered) / length if length else None
    gap = timeline.longest_between([s.time for s in snapshots], period.start, period.end)
    return History(share, uncovered, seen_uncovered, gap)


def now_verdict(newest: SnapshotFact | None, rpo: timedelta, at: datetime, seen: list[datetime]) -> Verdict:
    if newest is None:
        # a listing by then showed no snapshot: the repository was empty; otherwise nobody has looked yet
        return Verdict.VIOLATED if seen and min(seen) <= at else Verdict.UNKNOWN
    if at - newest.time <= rpo:
        return Verdict.MET
    # overdue: certain only if some listing after it went stale still showed nothing newer
    return Verdict.VIOLATED if seen and max(seen) > newest.time + rpo else Verdict.UNKNOWN


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    at, rpo = period.at, policy.rpo
    snapshots = taken_by(target, at)
    seen = listings(target)
    threshold = {"rpo_s": seconds(rpo), "share": 1.0}
    if not snapshots and not seen:
        return result(
            RULE,
            target.ref,
            Verdict.UNKNOWN,
            {"age_s": None, "share": None, "longest_gap_s": None, "uncovered_s": None, "newest_snapshot": None},
            threshold,
            "No probe or drill has listed this repository's snapshots yet: run `preuve targets probe`.",
            REFERENCES,
        )
    present = present_at(target, at)
    newest = present[-1] if present else None
    now = now_verdict(newest, rpo, at, seen)
    past = history(snapshots, rpo, period, seen)
    past_verdict = Verdict.VIOLATED if past.seen_uncovered else Verdict.UNKNOWN if past.uncovered else Verdict.MET
    value = {
        "age_s": seconds(at - newest.time) if newest else None,
        "share": round(past.share, 6) if past.share is not None else None,
        "longest_gap_s": seconds(past.gap[1] - past.gap[0]),
        "uncovered_s": seconds(past.uncovered),
        "newest_snapshot": newest.id if newest else None,
    }
    bounds = [s.id for s in snapshots if s.time in past.gap]
    return result(
        RULE,
        target.ref,
        worst([now, past_verdict]),
        value,
        threshold,
        _reason(newest, now, past, rpo, at, seen),
        REFERENCES,
        snapshots=([newest.id] if newest else []) + bounds,
        probes=[p.id for p in target.probes if p.ok and p.at <= at][-1:],
    )


def _reason(
    newest: SnapshotFact | None, now: Verdict, past: History, rpo: timedelta, at: datetime, seen: list[datetime]
) -> str:
    if newest is None:
        head = "No snapshot in the repository" if now is Verdict.VIOLATED else "No snapshot listed yet"
    else:
        head = f"Newest snapshot {short(newest.id)} is {human(at - newest.time)} old (RPO {human(rpo)})"
        if now is Verdict.UNKNOWN:
            head += f", and no listing since {when(max(seen))} shows whether a newer one exists"
    if past.share is None:
        return head + "."
    gap = f"longest gap {human(past.gap[1] - past.gap[0])} ({when(past.gap[0])} to {when(past.gap[1])})"
    tail = f"within the RPO {percent(past.share)} of the period, {gap}"
    if past.uncovered > past.seen_uncovered:
        tail += f"; {human(past.uncovered - past.seen_uncovered)} of it before or after any listing"
    return f"{head}; {tail}."


check = per_target(check_target)
