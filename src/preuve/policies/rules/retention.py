"""Retention: the repository still holds the snapshots that `restic forget` with the policy's keep-* depth keeps.

For keep-daily N, the last N days that have snapshots (over every snapshot ever listed, so that days forgotten
too early still count) must each still hold one. Counting the distinct days present would not do: the monthly
snapshots restic keeps fill daily buckets too, hiding a client whose forget keeps 3 days instead of 7.

A repository younger than the depth (the first snapshot less than N days, weeks, months ago) cannot hold it yet:
unknown, not violated, as long as nothing it should hold is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from preuve.policies.facts import ANSSI, HDS, ISO27001, NIS2, RuleResult, SnapshotFact, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules import forget
from preuve.policies.rules._common import exists_at, per_target, result, taken_by, when, worst

RULE = "retention"
REFERENCES = (ISO27001, NIS2, ANSSI, HDS)
_NOUN = {"hourly": "hours", "daily": "days", "weekly": "weeks", "monthly": "months", "yearly": "years"}


@dataclass(frozen=True)
class Depth:
    unit: str
    required: int
    held: int  # required buckets that still hold a snapshot
    missing: tuple[str, ...]  # bucket labels, newest first
    young: bool  # the source's history is shorter than the depth
    kept: tuple[str, ...]  # ids of the snapshots found in the required buckets

    @property
    def verdict(self) -> Verdict:
        if self.missing:
            return Verdict.VIOLATED
        if self.held < self.required:
            return Verdict.UNKNOWN if self.young else Verdict.VIOLATED
        return Verdict.MET


def depth(unit: str, required: int, group: list[SnapshotFact], period: Period) -> Depth:
    """How much of the last ``required`` buckets of ``unit`` with snapshots in ``group`` still hold one."""
    bucket = forget.BUCKETS[unit]
    history = list(dict.fromkeys(bucket(s.time) for s in reversed(group)))[:required]
    there = {bucket(s.time): s.id for s in group if exists_at(s, period.at)}
    missing = tuple(b for b in history if b not in there)
    young = forget.elapsed(unit, group[0].time, period.at) < required
    kept = tuple(there[b] for b in history if b in there)
    return Depth(unit, required, len(history) - len(missing), missing, young, kept)


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    asked = forget.counts(policy.retention)
    taken = taken_by(target, period.at)
    groups = [g for g in forget.groups(taken).values() if any(exists_at(s, period.at) for s in g)]
    if not asked or not groups:
        return _trivial(target, asked, bool(taken))
    depths = [depth(unit, n, group, period) for group in groups for unit, n in asked.items()]
    value = {unit: _value([d for d in depths if d.unit == unit]) for unit in asked}
    verdict = worst(d.verdict for d in depths)
    return result(
        RULE,
        target.ref,
        verdict,
        value,
        asked,
        _reason(depths, verdict, taken[0]),
        REFERENCES,
        snapshots=[i for d in depths for i in d.kept],
    )


def _trivial(target: TargetFacts, asked: dict[str, int], any_taken: bool) -> RuleResult:
    if not asked:
        verdict, reason = Verdict.MET, "The policy asks for no retention depth."
    elif any_taken:
        verdict, reason = Verdict.VIOLATED, "Every snapshot once listed in this repository is gone."
    else:
        verdict, reason = Verdict.UNKNOWN, "No snapshot listed yet: nothing to judge retention on."
    value = {unit: {"required": n, "held": 0, "missing": []} for unit, n in asked.items()}
    return result(RULE, target.ref, verdict, value, asked, reason, REFERENCES)


def _value(depths: list[Depth]) -> dict[str, object]:
    """One unit over every source: the worst held count, and every missing bucket."""
    return {
        "required": depths[0].required,
        "held": min(d.held for d in depths),
        "missing": sorted({b for d in depths for b in d.missing}, reverse=True),
    }


def _reason(depths: list[Depth], verdict: Verdict, first: SnapshotFact) -> str:
    if verdict is Verdict.MET:
        asked = ", ".join(dict.fromkeys(f"{d.required} {d.unit}" for d in depths))
        return f"The repository holds the {asked} snapshots `restic forget` keeps."
    parts = []
    for d in depths:
        noun = _NOUN[d.unit]
        if d.missing:
            parts.append(
                f"--keep-{d.unit} {d.required}: no snapshot left for {', '.join(d.missing)}, "
                "which restic's forget would have kept"
            )
        elif d.held < d.required and d.young:
            parts.append(
                f"--keep-{d.unit} {d.required} not yet applicable: the first snapshot ({when(first.time)}) spans "
                f"fewer than {d.required} {noun}"
            )
        elif d.held < d.required:
            parts.append(
                f"--keep-{d.unit} {d.required}: only {d.held} {noun} with a snapshot in the repository's history"
            )
    return "; ".join(dict.fromkeys(parts)) + "."


check = per_target(check_target)
