"""Immutability: backups nobody can delete, as the storage itself reports it, never as the configuration claims.

S3: Object Lock enabled on the bucket, versioning on, and a default retention at least
``immutability.min_retention``, all as boto3 read them at the latest probe (restic sets no retention of its own,
so without a default retention its objects are not locked). REST: an append-only server can only be declared by
its provider; Preuve cannot check it from outside, so it is reported as declared, not verified (unknown).

The rule applies when the policy asks for immutable copies (``copies.immutable`` > 0); local and SFTP targets
cannot be immutable and are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from preuve.policies.facts import ANSSI, ISO27001, NIS2, ClientFacts, ProbeFact, RuleResult, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules._common import human, iso, result, seconds, when

RULE = "immutability"
REFERENCES = (ISO27001, NIS2, ANSSI)
DECLARED = "Append-only declared by the provider, not verified: Preuve cannot check a REST server's mode from outside."


@dataclass(frozen=True)
class Lock:
    verdict: Verdict
    reason: str
    probe: ProbeFact | None = None
    facts: dict[str, Any] | None = None

    @property
    def value(self) -> dict[str, Any]:
        s3 = self.facts or {}
        retention = s3.get("default_retention") if isinstance(s3.get("default_retention"), dict) else None
        kept = _retention(retention) if retention else None
        return {
            "object_lock": s3.get("object_lock"),
            "versioning": s3.get("versioning"),
            "retention_s": seconds(kept) if kept else None,
            "mode": retention.get("mode") if retention else None,
            "read_at": iso(self.probe.at) if self.probe else None,
        }


def _retention(retention: dict[str, Any]) -> timedelta | None:
    days = retention.get("days") or 365 * (retention.get("years") or 0)
    return timedelta(days=days) if isinstance(days, int) and days > 0 else None


def latest_s3_probe(target: TargetFacts, at: datetime) -> ProbeFact | None:
    read = [p for p in target.probes if p.at <= at and isinstance(p.facts.get("s3"), dict)]
    return max(read, key=lambda p: p.at, default=None)


def s3_lock(target: TargetFacts, policy: Policy, at: datetime) -> Lock:
    """Whether the bucket's own settings make the backups undeletable for the policy's minimum."""
    probe = latest_s3_probe(target, at)
    if probe is None:
        return Lock(
            Verdict.UNKNOWN, "No probe has read the bucket's Object Lock settings yet: run `preuve targets probe`."
        )
    s3: dict[str, Any] = probe.facts["s3"]
    verdict, reason = _judge(s3, policy.immutability.min_retention)
    return Lock(verdict, f"{reason} (read {when(probe.at)}).", probe, s3)


def _judge(s3: dict[str, Any], minimum: timedelta) -> tuple[Verdict, str]:
    if s3.get("bucket_exists") is False:
        return Verdict.VIOLATED, "The bucket does not exist"
    if s3.get("bucket_exists") is not True or s3.get("object_lock") is None:
        error = s3.get("object_lock_error") or s3.get("error") or "unreachable"
        return Verdict.UNKNOWN, f"The bucket's Object Lock settings could not be read ({error})"
    if s3["object_lock"] is not True:
        return Verdict.VIOLATED, "Object Lock is not enabled on the bucket: anyone with its keys can delete the backups"
    if s3.get("versioning") != "Enabled":
        return Verdict.VIOLATED, f"Versioning is {s3.get('versioning') or 'off'} on the bucket, not Enabled"
    retention = s3.get("default_retention")
    kept = _retention(retention) if isinstance(retention, dict) else None
    if kept is None:
        return Verdict.VIOLATED, "Object Lock has no default retention: restic's objects are not locked"
    if kept < minimum:
        return Verdict.VIOLATED, f"Default retention {human(kept)} is shorter than the required {human(minimum)}"
    assert isinstance(retention, dict)
    mode = retention.get("mode")
    said = f"Object Lock on, versioning on, default retention {human(kept)} in {mode} mode"
    if mode == "GOVERNANCE":
        said += " (an account allowed s3:BypassGovernanceRetention can still delete)"
    return Verdict.MET, said


def target_lock(target: TargetFacts, policy: Policy, at: datetime) -> Lock | None:
    """The immutability a target offers, or None when its kind cannot offer any."""
    if target.kind == "s3":
        return s3_lock(target, policy, at)
    if target.kind == "rest" and target.append_only:
        return Lock(Verdict.UNKNOWN, DECLARED)
    return None


def check(policy: Policy, facts: ClientFacts, period: Period) -> list[RuleResult]:
    if policy.copies.immutable == 0:
        return []  # the policy asks for no immutable copy: min_retention applies to nothing
    threshold = {
        "object_lock": True,
        "versioning": "Enabled",
        "min_retention_s": seconds(policy.immutability.min_retention),
    }
    results = []
    for target in facts.targets:
        lock = target_lock(target, policy, period.at)
        if lock is None:
            continue
        value = lock.value if target.kind == "s3" else {"append_only": "declared"}
        probes = [lock.probe.id] if lock.probe else []
        results.append(result(RULE, target.ref, lock.verdict, value, threshold, lock.reason, REFERENCES, probes=probes))
    if not results:
        results.append(
            result(
                RULE,
                None,
                Verdict.VIOLATED,
                {"candidates": 0},
                threshold,
                f"The policy asks for {policy.copies.immutable} immutable copy(ies), but no target can be one: "
                "add an S3 bucket with Object Lock or an append-only REST server.",
                REFERENCES,
                targets=[t.ref for t in facts.targets],
            )
        )
    return results
