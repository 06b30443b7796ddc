"""RTO: the estimated time of a full restore, from the latest drill's measured throughput, against the RTO.

A sampled drill measures throughput, and an estimate is only that: `met` needs a full-restore drill, passed
within ``drill.full_restore_every``, that fit in the RTO. An estimate already over the RTO is enough to say it is
violated.
"""

from __future__ import annotations

from datetime import timedelta

from preuve.policies.facts import HDS, ISO27001, NIS2, DrillFact, RuleResult, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules._common import (
    PASSED,
    RESTORE_KINDS,
    finished,
    finished_by,
    human,
    per_target,
    present_at,
    result,
    seconds,
    when,
)

RULE = "rto"
REFERENCES = (ISO27001, NIS2, HDS)


def measured_s(drill: DrillFact) -> float | None:
    """A drill's full-restore time: the drill's own estimate, or the restore itself when it was a full one."""
    if drill.estimated_full_restore_s is not None:
        return drill.estimated_full_restore_s
    if drill.kind == "full" and drill.status == PASSED and drill.restore_s is not None:
        return drill.restore_s
    return None


def estimate_s(drill: DrillFact, current_bytes: int | None) -> float:
    """Scaled to the newest snapshot's size: the repository grows between drills, the throughput does not."""
    measured = measured_s(drill)
    assert measured is not None
    if current_bytes and drill.bytes_in_snapshot > 0 and current_bytes != drill.bytes_in_snapshot:
        return measured * current_bytes / drill.bytes_in_snapshot
    return measured


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    at, rto = period.at, policy.rto
    drills = finished_by(target.drills, at, RESTORE_KINDS)
    threshold = {"rto_s": seconds(rto), "full_restore_every_s": seconds(policy.drill.full_restore_every)}
    measuring = [d for d in drills if measured_s(d) is not None]
    if not measuring:
        return result(
            RULE,
            target.ref,
            Verdict.UNKNOWN,
            {"estimate_s": None, "full_restore_s": None, "full_restore_drill": None},
            threshold,
            "No drill has measured the restore throughput yet: run `preuve drill run` on this target.",
            REFERENCES,
        )
    latest = measuring[-1]
    present = present_at(target, at)
    estimate = estimate_s(latest, present[-1].size_bytes if present else None)
    since = at - policy.drill.full_restore_every
    fulls = [d for d in drills if d.kind == "full" and d.status == PASSED and finished(d) >= since]
    full = fulls[-1] if fulls else None
    full_s = measured_s(full) if full else None
    value = {
        "estimate_s": round(estimate, 3),
        "full_restore_s": full_s,
        "full_restore_drill": full.id if full else None,
    }
    verdict, reason = _judge(estimate, latest, full, full_s, rto, policy.drill.full_restore_every)
    return result(
        RULE,
        target.ref,
        verdict,
        value,
        threshold,
        reason,
        REFERENCES,
        drills=[latest.id] + ([full.id] if full else []),
    )


def _judge(
    estimate: float,
    latest: DrillFact,
    full: DrillFact | None,
    full_s: float | None,
    rto: timedelta,
    every: timedelta,
) -> tuple[Verdict, str]:
    rto_s = rto.total_seconds()
    said = f"Estimated full restore {human(timedelta(seconds=estimate))} (drill {latest.id}), RTO {human(rto)}"
    if estimate > rto_s:
        return Verdict.VIOLATED, f"{said}: a full restore would not fit in the RTO."
    if full is None:
        return Verdict.UNKNOWN, f"{said}: unconfirmed, no full-restore drill passed in the last {human(every)}."
    assert full_s is not None
    confirmed = f"full-restore drill {full.id} of {when(finished(full))} took {human(timedelta(seconds=full_s))}"
    if full_s > rto_s:
        return Verdict.VIOLATED, f"{said}; but {confirmed}, over the RTO."
    return Verdict.MET, f"{said}; {confirmed}."


check = per_target(check_target)
