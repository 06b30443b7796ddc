"""One target's part of the attestation: what its ledger entries say about the period.

The target's description (kind, location, media, enabled) and the thresholds it is held to (RPO, RTO, integrity
window, whether an immutable copy is required) come from the configuration: the job file and the client's policy
(``config.client_policy``, i.e. policies/ with the job's overrides). Everything measured comes from the ledger.
Each block's ``status`` is the verdict of the policy rule that judges it (rpo, rto, integrity-coverage,
immutability) for that target, so that a block never contradicts the rules listed below it; ``unknown`` when the
rule could not judge, ``not-applicable`` when the policy does not apply it to this target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from preuve.config.model import RestTarget, Target
from preuve.policies.facts import RuleResult
from preuve.policies.model import Policy
from preuve.policies.rules.integrity import parts_read
from preuve.reports.month_drills import RESTORE_KINDS, Drill
from preuve.reports.month_ledger import Entry
from preuve.reports.snapshot_age import Observation, summarize
from preuve.reports.values import count, iso_z, ms_to_s, seconds, when_us

IMMUTABLE_KINDS = ("s3", "rest")


@dataclass(frozen=True)
class TargetInput:
    """What the ledger holds about one target, for the period and before it."""

    ref: str
    name: str
    spec: Target
    month_drills: Sequence[Drill]  # recorded in the period
    known_drills: Sequence[Drill]  # recorded up to the period's end (the period's and the earlier ones read)
    probes: Sequence[Entry]  # successful probes: the last one before the period, then the period's
    entries_in_period: int  # entries of any kind about this target in the period


def _verdict(rules: Mapping[tuple[str, str | None], RuleResult], rule: str, ref: str, default: str) -> str:
    found = rules.get((rule, ref))
    return found.verdict.value if found is not None else default


def observations(item: TargetInput) -> list[Observation]:
    seen = [
        Observation(
            when_us(p.payload.get("finished_at")) or p.recorded_at, when_us(p.payload.get("newest_snapshot_time")), True
        )
        for p in item.probes
    ]
    seen += [Observation(d.finished_at, d.snapshot_time, False) for d in item.known_drills if d.snapshot_time]
    return seen


def _drill_counts(drills: Sequence[Drill]) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for drill in drills:
        by_kind[drill.kind] = by_kind.get(drill.kind, 0) + 1
    return {
        "passed": sum(1 for d in drills if d.status == "passed"),
        "failed": sum(1 for d in drills if d.status == "failed"),
        "errors": sum(1 for d in drills if d.status == "error"),
        "interrupted": sum(1 for d in drills if d.status == "interrupted"),
        "by_kind": dict(sorted(by_kind.items())),
    }


def last_passed(drills: Sequence[Drill], kinds: frozenset[str] = RESTORE_KINDS) -> Drill | None:
    passed = [d for d in drills if d.status == "passed" and d.kind in kinds]
    return passed[-1] if passed else None


def _estimate_s(drill: Drill) -> int | None:
    """As the RTO rule measures it: the drill's own estimate, or the restore itself for a passed full restore."""
    if drill.estimated_full_restore_ms is not None:
        return ms_to_s(drill.estimated_full_restore_ms)
    if drill.kind == "full" and drill.status == "passed":
        return ms_to_s(drill.restore_ms)
    return None


def _rto(item: TargetInput, policy: Policy, status: str) -> dict[str, Any]:
    measuring = [d for d in item.known_drills if d.kind in RESTORE_KINDS and _estimate_s(d) is not None]
    latest = measuring[-1] if measuring else None
    full = last_passed(item.known_drills, frozenset({"full"}))
    return {
        "threshold_s": seconds(policy.rto),
        "estimated_full_restore_s": _estimate_s(latest) if latest else None,
        "status": status,
        "last_full_restore": {
            "drill": full.id,
            "at": iso_z(full.finished_at),
            "duration_s": ms_to_s(full.restore_ms if full.restore_ms is not None else full.duration_ms),
        }
        if full
        else None,
        "estimated_by_drill": latest.id if latest else None,
        "full_restore_every_s": seconds(policy.drill.full_restore_every),
    }


def _integrity(item: TargetInput, policy: Policy, end: datetime, status: str) -> dict[str, Any]:
    since = end - policy.integrity.window
    runs = [d for d in item.known_drills if d.kind == "integrity" and since < d.finished_at <= end]
    parts, read, _ = parts_read([d.fact() for d in runs])
    return {
        "coverage_pct": round(100 * len(read) / parts, 2) if parts else None,
        "threshold_pct": 100.0,
        "status": status,
        "window_s": seconds(policy.integrity.window),
        "failed_runs": [d.id for d in runs if d.status == "failed"],
    }


def _retention_days(retention: Any) -> int | None:
    if not isinstance(retention, dict):
        return None
    days = retention.get("days")
    years = retention.get("years")
    if isinstance(days, int) and days > 0:
        return days
    if isinstance(years, int) and years > 0:
        return 365 * years
    return None


def _immutability(item: TargetInput, policy: Policy, status: str) -> dict[str, Any]:
    s3: dict[str, Any] = {}
    for probe in reversed(item.probes):
        facts = probe.payload.get("facts")
        if isinstance(facts, dict) and isinstance(facts.get("s3"), dict):
            s3 = facts["s3"]
            break
    lock = s3.get("object_lock")
    retention = s3.get("default_retention")
    return {
        "required": policy.copies.immutable > 0 and item.spec.kind in IMMUTABLE_KINDS,
        "object_lock": lock if isinstance(lock, bool) else None,
        "mode": retention.get("mode") if isinstance(retention, dict) and lock is True else None,
        "retention_days": _retention_days(retention) if lock is True else None,
        "status": status,
        "versioning": s3.get("versioning") if isinstance(s3.get("versioning"), str) else None,
        "append_only_declared": isinstance(item.spec, RestTarget) and item.spec.append_only,
    }


def target_block(
    item: TargetInput,
    policy: Policy,
    start: datetime,
    end: datetime,
    rules: Mapping[tuple[str, str | None], RuleResult],
) -> dict[str, Any]:
    spec = item.spec
    month = list(item.month_drills)
    passed = [d for d in month if d.status == "passed" and d.kind in RESTORE_KINDS]
    last = last_passed(item.known_drills)
    ages = summarize(observations(item), start, end, policy.rpo)
    return {
        "ref": item.ref,
        "name": item.name,
        "kind": spec.kind,
        "location": spec.location,
        "media": spec.media,
        "enabled": spec.enabled,
        "tested": bool(passed),
        "drills": _drill_counts(month),
        "files_verified": sum(count(d.files_checked) for d in passed),
        "bytes_verified": sum(count(d.bytes_restored) for d in passed),
        "last_passed_drill": {
            "drill": last.id,
            "at": iso_z(last.finished_at),
            "kind": last.kind,
            "snapshot_id": last.snapshot_id[:8] if last.snapshot_id else None,
            "snapshot": last.snapshot_id,
        }
        if last
        else None,
        "rpo": {
            "threshold_s": seconds(policy.rpo),
            "compliance_pct": ages.compliance_pct,
            "longest_gap_s": ages.longest_gap_s,
            "newest_age_at_end_s": ages.newest_age_at_end_s,
            "status": _verdict(rules, "rpo", item.ref, "unknown"),
            "observed_pct": ages.observed_pct,
        },
        "rto": _rto(item, policy, _verdict(rules, "rto", item.ref, "unknown")),
        "integrity": _integrity(item, policy, end, _verdict(rules, "integrity-coverage", item.ref, "unknown")),
        "immutability": _immutability(item, policy, _verdict(rules, "immutability", item.ref, "not-applicable")),
        "snapshot_age": {"rpo_s": seconds(policy.rpo), "points": ages.points},
        "entries_in_period": item.entries_in_period,
    }
