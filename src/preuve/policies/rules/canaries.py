"""Canaries: files of known content, declared per target, each restored and matching in the latest restore drill.

A canary proves the backup holds real data, not an encrypted or emptied copy. With none declared the rule cannot
be judged: unknown, with advice to declare one.
"""

from __future__ import annotations

from preuve.policies.facts import HDS, ISO27001, NIS2, RuleResult, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules._common import RESTORE_KINDS, finished, finished_by, per_target, result, when

RULE = "canaries"
REFERENCES = (ISO27001, NIS2, HDS)
CONCLUDED = frozenset({"passed", "failed"})  # drills that got as far as comparing files


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    declared = len(target.canaries)
    threshold = {"checked": declared, "failed": 0}
    if not declared:
        return result(
            RULE, target.ref, Verdict.UNKNOWN, {"declared": 0, "checked": 0, "failed": [], "drill": None}, threshold,
            "No canary declared: add a file of known content and its SHA-256 under `canaries:` in the job file, "
            "so that drills prove the data itself is restorable.",
            REFERENCES,
        )  # fmt: skip
    drills = [d for d in finished_by(target.drills, period.at, RESTORE_KINDS) if d.status in CONCLUDED]
    if not drills:
        return result(
            RULE, target.ref, Verdict.UNKNOWN, {"declared": declared, "checked": 0, "failed": [], "drill": None},
            threshold, "No restore drill has checked the canaries yet.", REFERENCES,
        )  # fmt: skip
    latest = drills[-1]
    value = {
        "declared": declared,
        "checked": latest.canaries_checked,
        "failed": list(latest.failed_canaries),
        "drill": latest.id,
    }
    of = f"drill {latest.id} of {when(finished(latest))}"
    if latest.failed_canaries:
        verdict = Verdict.VIOLATED
        reason = f"Canaries missing or altered in {of}: {', '.join(latest.failed_canaries)}."
    elif latest.canaries_checked < declared:
        verdict = Verdict.UNKNOWN
        reason = f"{of[0].upper()}{of[1:]} checked {latest.canaries_checked} of the {declared} declared canaries."
    else:
        verdict = Verdict.MET
        reason = f"All {declared} canaries restored and matching in {of}."
    return result(RULE, target.ref, verdict, value, threshold, reason, REFERENCES, drills=[latest.id])


check = per_target(check_target)
