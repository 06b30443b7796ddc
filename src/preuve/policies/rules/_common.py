"""What every rule needs: building a result, and reading the facts as they stood at a moment."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from preuve.config.units import format_duration
from preuve.policies.facts import ClientFacts, DrillFact, RuleResult, SnapshotFact, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period

Rule = Callable[[Policy, ClientFacts, Period], list[RuleResult]]
TargetRule = Callable[[Policy, TargetFacts, Period], RuleResult]

PASSED = "passed"
FAILURES = frozenset({"failed", "error"})  # a drill that found a problem, or could not verify
RESTORE_KINDS = frozenset({"sample", "full"})


def result(
    rule: str,
    target: str | None,
    verdict: Verdict,
    value: Any,
    threshold: Any,
    reason: str,
    references: tuple[str, ...],
    *,
    snapshots: Iterable[str] = (),
    drills: Iterable[int] = (),
    probes: Iterable[int] = (),
    targets: Iterable[str] = (),
) -> RuleResult:
    evidence: dict[str, list[Any]] = {}
    # only the kinds of evidence a rule actually rests on, each listed once in first-seen order
    for key, ids in (("targets", targets), ("snapshots", snapshots), ("drills", drills), ("probes", probes)):
        listed = list(dict.fromkeys(ids))
        if listed:
            evidence[key] = listed
    return RuleResult(rule, target, verdict, value, threshold, reason, evidence, references)


def per_target(check: TargetRule) -> Rule:
    def rule(policy: Policy, facts: ClientFacts, period: Period) -> list[RuleResult]:
        return [check(policy, target, period) for target in facts.targets]

    return rule


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """Violated beats unknown beats met; nothing to judge is met."""
    seen = set(verdicts)
    if Verdict.VIOLATED in seen:
        return Verdict.VIOLATED
    if Verdict.UNKNOWN in seen:
        return Verdict.UNKNOWN
    return Verdict.MET


# --- snapshots --------------------------------------------------------------------------------------------------


def taken_by(target: TargetFacts, at: datetime) -> list[SnapshotFact]:
    """Every snapshot taken by ``at``, gone ones included, oldest first."""
    return sorted((s for s in target.snapshots if s.time <= at), key=lambda s: s.time)


def exists_at(snapshot: SnapshotFact, at: datetime) -> bool:
    # restic's own time says when it was there; the first listing to miss it says when it no longer was
    return snapshot.time <= at and (snapshot.gone_at is None or snapshot.gone_at > at)


def present_at(target: TargetFacts, at: datetime) -> list[SnapshotFact]:
    return [s for s in taken_by(target, at) if exists_at(s, at)]


def source_of(snapshot: SnapshotFact) -> tuple[str, tuple[str, ...]]:
    """restic's default grouping (``--group-by host,paths``): forget and diff work within one such group."""
    return snapshot.hostname, tuple(sorted(snapshot.paths))


def listings(target: TargetFacts) -> list[datetime]:
    """Moments the repository's snapshot list is known to have been read (probes and drills)."""
    times = [p.at for p in target.probes if p.ok]
    for s in target.snapshots:
        times += [s.first_seen_at, s.last_seen_at]
        if s.gone_at is not None:
            times.append(s.gone_at)
    return times


def watched_since(target: TargetFacts) -> datetime | None:
    """The first fact Preuve holds about a target: before it, nothing can be said either way."""
    times = listings(target) + [p.at for p in target.probes] + [d.requested_at for d in target.drills]
    return min(times, default=None)


# --- drills -----------------------------------------------------------------------------------------------------


def finished_by(drills: Sequence[DrillFact], at: datetime, kinds: frozenset[str] | None = None) -> list[DrillFact]:
    """Drills that had finished by ``at``, oldest first."""
    done = [d for d in drills if d.finished_at is not None and d.finished_at <= at]
    if kinds is not None:
        done = [d for d in done if d.kind in kinds]
    return sorted(done, key=finished)


def finished(drill: DrillFact) -> datetime:
    assert drill.finished_at is not None
    return drill.finished_at


# --- wording ----------------------------------------------------------------------------------------------------


def seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 3)


def human(delta: timedelta) -> str:
    return span(delta.total_seconds())


def span(seconds: float) -> str:
    """``format_duration``, but in days from two days on: policies speak of 7d and 30d, not 168 h."""
    if seconds < 2 * 86400:
        return format_duration(seconds)
    days, rest = divmod(round(seconds), 86400)
    hours = rest // 3600
    return f"{days} d {hours:02d} h" if hours else f"{days} d"


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M %Z}".strip()


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def percent(share: float) -> str:
    return f"{share * 100:.1f} %"


def short(snapshot_id: str) -> str:
    return snapshot_id[:8]
