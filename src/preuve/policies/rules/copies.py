"""Copies, the 3-2-1-1-0 rule: each source held by at least ``copies.min`` targets, on ``copies.media`` kinds of
medium, ``copies.offsite`` of them away from the premises, ``copies.immutable`` of them undeletable, and zero
failed or erroring drills among them over the period.

What a target holds is read from its newest snapshot (host and paths, restic's own notion of a source), not from
the configuration. One result for the whole client; each source is judged on its own, so a laptop backed up only
to the NAS is not hidden by a server backed up twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from preuve.policies.facts import (
    ANSSI,
    HDS,
    ISO27001,
    NIS2,
    ClientFacts,
    DrillFact,
    RuleResult,
    SnapshotFact,
    TargetFacts,
    Verdict,
)
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules._common import FAILURES, finished, finished_by, present_at, result, source_of, worst
from preuve.policies.rules.immutability import DECLARED, target_lock

RULE = "copies"
REFERENCES = (ISO27001, NIS2, ANSSI, HDS)


@dataclass
class Source:
    host: str
    paths: tuple[str, ...]
    holders: list[tuple[TargetFacts, SnapshotFact]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.host or '?'}:{','.join(self.paths) or '?'}"


@dataclass
class Judgement:
    verdict: Verdict
    value: dict[str, Any]
    said: str
    drills: list[int]
    probes: list[int]


def sources(facts: ClientFacts, period: Period) -> tuple[list[Source], list[TargetFacts]]:
    """Targets grouped by the source their newest snapshot holds; targets with no snapshot apart."""
    found: dict[tuple[str, tuple[str, ...]], Source] = {}
    unknown: list[TargetFacts] = []
    for target in facts.targets:
        present = present_at(target, period.at)
        if not present:
            unknown.append(target)
            continue
        key = source_of(present[-1])
        found.setdefault(key, Source(*key)).holders.append((target, present[-1]))
    return list(found.values()), unknown


def _immutable(source: Source, policy: Policy, period: Period) -> tuple[int, int, int, list[int]]:
    """(verified, declared, unreadable) immutable holders, and the probes read."""
    verified = declared = unreadable = 0
    probes: list[int] = []
    for target, _ in source.holders:
        lock = target_lock(target, policy, period.at)
        if lock is None:
            continue
        if lock.probe is not None:
            probes.append(lock.probe.id)
        if lock.verdict is Verdict.MET:
            verified += 1
        elif lock.reason == DECLARED:
            declared += 1
        elif lock.verdict is Verdict.UNKNOWN:
            unreadable += 1
    return verified, declared, unreadable, probes


def _failed_in(drill: DrillFact, period: Period) -> bool:
    return drill.status in FAILURES and period.contains(finished(drill))


def judge(source: Source, policy: Policy, period: Period, undetermined: bool) -> Judgement:
    rules = policy.copies
    targets = [t for t, _ in source.holders]
    media = sorted({t.media for t in targets})
    offsite = sum(1 for t in targets if t.location == "offsite")
    verified, declared, unreadable, probes = _immutable(source, policy, period)
    failed = [d for t in targets for d in finished_by(t.drills, period.at) if _failed_in(d, period)]
    # a target whose snapshots are unknown might hold this source too: a shortfall is then not certain
    short = Verdict.UNKNOWN if undetermined else Verdict.VIOLATED
    checks: list[tuple[Verdict, str]] = []
    if len(targets) < rules.min:
        checks.append((short, f"{len(targets)} of {rules.min} copies"))
    if len(media) < rules.media:
        checks.append((short, f"{len(media)} of {rules.media} kinds of medium"))
    if offsite < rules.offsite:
        checks.append((short, f"{offsite} of {rules.offsite} offsite"))
    if verified + declared < rules.immutable:
        certain = verified + declared + unreadable < rules.immutable and not undetermined
        checks.append(
            (Verdict.VIOLATED if certain else Verdict.UNKNOWN, f"{verified + declared} of {rules.immutable} immutable")
        )
    if failed:
        checks.append((Verdict.VIOLATED, f"{len(failed)} failed or erroring drill(s) in the period"))
    value = {
        "host": source.host,
        "paths": list(source.paths),
        "targets": [t.ref for t in targets],
        "copies": len(targets),
        "media": media,
        "offsite": offsite,
        "immutable": verified + declared,
        "immutable_declared": declared,
        "failed_drills": len(failed),
    }
    refs = ", ".join(t.ref for t in targets)
    copies = f"{len(targets)} cop{'y' if len(targets) == 1 else 'ies'}"
    said = f"{source.label} on {refs}: {copies} on {', '.join(media)}, {offsite} offsite, "
    said += f"{verified + declared} immutable"
    if declared and rules.immutable:
        said += f" ({declared} declared, not verified)"
    if checks:
        said += "; against the policy: " + ", ".join(text for _, text in checks)
    return Judgement(worst(v for v, _ in checks), value, said, [d.id for d in failed], probes)


def check(policy: Policy, facts: ClientFacts, period: Period) -> list[RuleResult]:
    rules = policy.copies
    threshold = {
        "copies": rules.min,
        "media": rules.media,
        "offsite": rules.offsite,
        "immutable": rules.immutable,
        "failed_drills": 0,
    }
    found, undetermined = sources(facts, period)
    refs = [t.ref for t in facts.targets]
    if not found:
        return [
            result(
                RULE,
                None,
                Verdict.UNKNOWN,
                {"sources": [], "undetermined": refs},
                threshold,
                "No target has a snapshot listed yet, so which source each one holds is unknown.",
                REFERENCES,
                targets=refs,
            )
        ]
    judged = [judge(s, policy, period, bool(undetermined)) for s in found]
    reason = "; ".join(j.said for j in judged) + "."
    if undetermined:
        reason += f" No snapshot listed for {', '.join(t.ref for t in undetermined)}: what it holds is unknown."
    return [
        result(
            RULE,
            None,
            worst(j.verdict for j in judged),
            {"sources": [j.value for j in judged], "undetermined": [t.ref for t in undetermined]},
            threshold,
            reason,
            REFERENCES,
            targets=refs,
            snapshots=[snap.id for s in found for _, snap in s.holders],
            drills=[i for j in judged for i in j.drills],
            probes=[i for j in judged for i in j.probes],
        )
    ]
