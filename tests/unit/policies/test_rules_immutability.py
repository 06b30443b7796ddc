"""Immutability: S3 Object Lock as the bucket reports it; REST append-only only as declared."""

from __future__ import annotations

from typing import Any

from preuve.policies.facts import RuleResult, Verdict
from preuve.policies.rules import immutability

from .factories import client, day, period, policy, probe, s3_facts, target

REQUIRED = policy(copies={"immutable": 1}, immutability={"min_retention": "30d"})


def check_one(facts_probe: dict[str, Any] | None) -> RuleResult:
    probes = [probe(day(5), pid=9, facts=facts_probe)] if facts_probe is not None else []
    t = target("s3", kind="s3", media="object-storage", probes=probes)
    [r] = immutability.check(REQUIRED, client(t), period(0, 10))
    return r


def test_locked_bucket_is_met() -> None:
    r = check_one(s3_facts(days=30))
    assert r.verdict is Verdict.MET
    assert r.value == {
        "object_lock": True,
        "versioning": "Enabled",
        "retention_s": 30 * 86400,
        "mode": "COMPLIANCE",
        "read_at": day(5).isoformat(),
    }
    assert r.threshold == {"object_lock": True, "versioning": "Enabled", "min_retention_s": 30 * 86400}
    assert r.evidence == {"probes": [9]}


def test_governance_mode_is_met_with_a_warning() -> None:
    r = check_one(s3_facts(mode="GOVERNANCE"))
    assert r.verdict is Verdict.MET
    assert "BypassGovernanceRetention" in r.reason


def test_violations() -> None:
    assert check_one(s3_facts(lock=False)).verdict is Verdict.VIOLATED
    assert check_one(s3_facts(days=None)).verdict is Verdict.VIOLATED
    assert check_one(s3_facts(days=7)).verdict is Verdict.VIOLATED
    assert check_one(s3_facts(versioning="Suspended")).verdict is Verdict.VIOLATED
    assert check_one({"s3": {"bucket_exists": False}}).verdict is Verdict.VIOLATED


def test_unreadable_or_never_read_is_unknown() -> None:
    unreadable = {
        "s3": {"bucket_exists": True, "versioning": "Enabled", "object_lock": None, "object_lock_error": "AccessDenied"}
    }
    r = check_one(unreadable)
    assert r.verdict is Verdict.UNKNOWN
    assert "AccessDenied" in r.reason
    assert check_one(None).verdict is Verdict.UNKNOWN


def test_the_latest_reading_counts() -> None:
    t = target("s3", kind="s3", probes=[probe(day(1), facts=s3_facts(lock=False)), probe(day(2), facts=s3_facts())])
    [r] = immutability.check(REQUIRED, client(t), period(0, 10))
    assert r.verdict is Verdict.MET
    later = target(
        "s3", kind="s3", probes=[probe(day(1), facts=s3_facts()), probe(day(20), facts=s3_facts(lock=False))]
    )
    [r] = immutability.check(REQUIRED, client(later), period(0, 10))  # a reading after the period is not used
    assert r.verdict is Verdict.MET


def test_rest_append_only_is_declared_not_verified() -> None:
    rest = target("rest", kind="rest", append_only=True)
    [r] = immutability.check(REQUIRED, client(rest, target("disk")), period(0, 10))
    assert r.verdict is Verdict.UNKNOWN
    assert r.target == "acme/rest"
    assert "not verified" in r.reason


def test_not_required_is_not_applicable() -> None:
    assert immutability.check(policy(copies={"immutable": 0}), client(target("s3", kind="s3")), period(0, 10)) == []


def test_required_but_no_target_can_be_immutable() -> None:
    [r] = immutability.check(REQUIRED, client(target("disk"), target("rest", kind="rest")), period(0, 10))
    assert r.verdict is Verdict.VIOLATED
    assert r.target is None
    assert r.evidence == {"targets": ["acme/disk", "acme/rest"]}
