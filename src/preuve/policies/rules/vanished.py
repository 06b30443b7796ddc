"""Vanished snapshots: a snapshot gone before the policy's retention let it go.

Attackers delete backups first, and restic says nothing when the newest snapshot disappears. For each snapshot
that a listing in the period no longer showed, this replays `restic forget` with the policy's keep-* depth over
the snapshots of the same source known at that moment (those listed by then and not gone earlier, including
those that went in the same listing): if forget would have kept it, someone removed it early. The newest
snapshot of a source is never forgotten by restic, so its vanishing is always reported.
"""

from __future__ import annotations

from datetime import datetime

from preuve.policies.facts import ANSSI, HDS, ISO27001, NIS2, RuleResult, SnapshotFact, TargetFacts, Verdict
from preuve.policies.model import Policy, RetentionRules
from preuve.policies.period import Period
from preuve.policies.rules import forget
from preuve.policies.rules._common import listings, per_target, result, short, source_of, when

RULE = "vanished-snapshots"
REFERENCES = (ISO27001, NIS2, ANSSI, HDS)


def known_at(target: TargetFacts, moment: datetime) -> list[SnapshotFact]:
    """Snapshots in the repository just before the listing at ``moment``, as far as listings tell."""
    return [
        s
        for s in target.snapshots
        if s.time <= moment and s.first_seen_at <= moment and (s.gone_at is None or s.gone_at >= moment)
    ]


def why_premature(target: TargetFacts, gone: SnapshotFact, retention: RetentionRules) -> str | None:
    """Why ``gone`` should still be there ("newest" or "retention"), or None when forget could have removed it."""
    assert gone.gone_at is not None
    # itself included; `or` guards against a store whose first sighting postdates the loss
    siblings = [s for s in known_at(target, gone.gone_at) if source_of(s) == source_of(gone)] or [gone]
    if max(s.time for s in siblings) == gone.time:
        return "newest"
    if gone.id in forget.kept(siblings, retention):
        return "retention"
    return None


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    gone = [s for s in target.snapshots if s.gone_at is not None and period.contains(s.gone_at)]
    judged = [(s, why_premature(target, s, policy.retention)) for s in gone]
    early = [(s, why) for s, why in judged if why is not None]
    value = {
        "vanished": [s.id for s, _ in early],
        "newest_vanished": [s.id for s, why in early if why == "newest"],
        "forgotten": len(judged) - len(early),
    }
    threshold = {"vanished": 0, "keep": forget.counts(policy.retention)}
    looked = any(period.contains(t) for t in listings(target))
    if early:
        verdict, reason = Verdict.VIOLATED, _violation(early)
    elif not looked:
        verdict = Verdict.UNKNOWN
        reason = "No listing of the repository during the period: a deleted snapshot would have gone unseen."
    else:
        verdict = Verdict.MET
        reason = (
            f"{len(gone)} snapshot(s) removed during the period, all allowed by the retention policy."
            if gone
            else "No snapshot disappeared during the period."
        )
    return result(RULE, target.ref, verdict, value, threshold, reason, REFERENCES, snapshots=[s.id for s, _ in early])


def _violation(early: list[tuple[SnapshotFact, str]]) -> str:
    parts = []
    for s, why in early:
        assert s.gone_at is not None
        what = "the newest snapshot" if why == "newest" else "a snapshot the retention policy still keeps"
        parts.append(f"{short(s.id)} of {when(s.time)} ({what}) was gone at {when(s.gone_at)}")
    return "Snapshots deleted before their time, as an attacker would: " + "; ".join(parts) + "."


check = per_target(check_target)
