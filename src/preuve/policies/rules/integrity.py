"""Integrity coverage: the share of the repository's packs read by `restic check --read-data-subset=n/t` within
``integrity.window``.

Parts only add up within one rotation: a part n of t and a part n of another t are different slices, so only the
parts of the current t (the latest run's) count. Any failed run in the window means damage was found: violated,
even if later parts passed, until the window moves past it.
"""

from __future__ import annotations

from preuve.drills.integrity import Subset
from preuve.policies.facts import HDS, ISO27001, NIS2, DrillFact, RuleResult, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules._common import (
    PASSED,
    finished,
    finished_by,
    human,
    per_target,
    percent,
    result,
    seconds,
    watched_since,
)

RULE = "integrity-coverage"
REFERENCES = (ISO27001, NIS2, HDS)
FAILED = "failed"


def subset(drill: DrillFact) -> Subset | None:
    try:
        return Subset.parse(drill.subset) if drill.subset else None
    except ValueError:
        return None


def parts_read(runs: list[DrillFact]) -> tuple[int | None, set[int], list[DrillFact]]:
    """(t of the latest run, parts n of that t read by passed runs, those runs)."""
    parsed = [(d, s) for d in runs if (s := subset(d)) is not None]
    if not parsed:
        return None, set(), []
    parts = parsed[-1][1].parts
    counted = [(d, s) for d, s in parsed if d.status == PASSED and s.parts == parts]
    return parts, {s.part for _, s in counted}, [d for d, _ in counted]


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    at, window = period.at, policy.integrity.window
    since = at - window
    runs = [d for d in finished_by(target.drills, at, frozenset({"integrity"})) if finished(d) > since]
    parts, read, counted = parts_read(runs)
    failed = [d for d in runs if d.status == FAILED]
    share = len(read) / parts if parts else 0.0
    value = {"share": round(share, 6), "parts_read": sorted(read), "parts": parts, "failed": [d.id for d in failed]}
    threshold = {"share": 1.0, "window_s": seconds(window)}
    watched = watched_since(target)
    young = watched is None or watched > since
    if failed:
        verdict = Verdict.VIOLATED
        reason = f"`restic check` found damage in {len(failed)} run(s) within the last {human(window)}."
    elif share >= 1:
        verdict = Verdict.MET
        reason = f"Every part of the repository (all {parts}) was read within the last {human(window)}."
    else:
        verdict = Verdict.UNKNOWN if young else Verdict.VIOLATED
        done = f"{len(read)} of {parts} parts" if parts else "no part"
        reason = f"Only {percent(share)} of the repository read within the last {human(window)} ({done})"
        reason += (
            "; Preuve has watched it for less than that, so the rotation may not be through yet." if young else "."
        )
    return result(
        RULE, target.ref, verdict, value, threshold, reason, REFERENCES, drills=[d.id for d in counted + failed]
    )


check = per_target(check_target)
