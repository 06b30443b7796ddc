"""Drill frequency: a passing restore drill at least every ``drill.every``, and every failure followed by a pass
within ``drill.grace``.

Only restore drills (sample and full) count: integrity runs read packs but restore nothing, and have their own
rule. A target is judged from the first fact Preuve holds about it, so that a target added last week is not
blamed for the weeks before it existed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from preuve.policies.facts import ANSSI, HDS, ISO27001, NIS2, DrillFact, RuleResult, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules import _timeline as timeline
from preuve.policies.rules._common import (
    FAILURES,
    PASSED,
    RESTORE_KINDS,
    finished,
    finished_by,
    human,
    iso,
    per_target,
    result,
    seconds,
    watched_since,
    when,
)

RULE = "drill-frequency"
REFERENCES = (ISO27001, NIS2, ANSSI, HDS)


def unrecovered(
    failures: list[DrillFact], passes: list[datetime], grace: timedelta, at: datetime
) -> tuple[list[DrillFact], list[DrillFact]]:
    """Failures with no pass within the grace period: (overdue ones, ones whose grace has not run out yet)."""
    overdue: list[DrillFact] = []
    pending: list[DrillFact] = []
    for failure in failures:
        done = finished(failure)
        if any(done < p <= done + grace for p in passes):
            continue
        (pending if done + grace > at else overdue).append(failure)
    return overdue, pending


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    at, every, grace = period.at, policy.drill.every, policy.drill.grace
    threshold = {"every_s": seconds(every), "grace_s": seconds(grace)}
    since = watched_since(target)
    if since is None or since > at:
        return result(
            RULE,
            target.ref,
            Verdict.UNKNOWN,
            {"longest_gap_s": None, "passed": 0, "failed": 0, "last_pass": None, "unrecovered": [], "pending": []},
            threshold,
            "Nothing recorded for this target yet: run `preuve drill run` on it.",
            REFERENCES,
        )
    drills = finished_by(target.drills, at, RESTORE_KINDS)
    passing = [d for d in drills if d.status == PASSED]
    passes = [finished(d) for d in passing]
    start = max(period.start, since)
    gap = timeline.longest_between(passes, start, at)
    failures = [d for d in drills if d.status in FAILURES and finished(d) >= period.start - grace]
    overdue, pending = unrecovered(failures, passes, grace, at)
    late = gap[1] - gap[0] > every
    value = {
        "longest_gap_s": seconds(gap[1] - gap[0]),
        "passed": sum(1 for p in passes if start <= p),
        "failed": sum(1 for d in failures if period.contains(finished(d))),
        "last_pass": iso(passes[-1]) if passes else None,
        "unrecovered": [d.id for d in overdue],
        "pending": [d.id for d in pending],
    }
    return result(
        RULE,
        target.ref,
        Verdict.VIOLATED if late or overdue else Verdict.MET,
        value,
        threshold,
        _reason(gap, every, late, overdue, pending, grace, bool(passes)),
        REFERENCES,
        drills=[d.id for d in passing if finished(d) in gap] + [d.id for d in overdue + pending],
    )


def _reason(
    gap: timeline.Span,
    every: timedelta,
    late: bool,
    overdue: list[DrillFact],
    pending: list[DrillFact],
    grace: timedelta,
    ever: bool,
) -> str:
    span = f"{human(gap[1] - gap[0])} ({when(gap[0])} to {when(gap[1])})"
    if late:
        parts = [
            f"{'No passing drill' if not ever else 'Longest time without a passing drill'} for {span}, "
            f"more than the {human(every)} required"
        ]
    elif not ever:
        parts = [f"No passing drill yet; the first is due by {when(gap[0] + every)}"]
    else:
        parts = [f"A passing drill at least every {human(every)} (longest gap {human(gap[1] - gap[0])})"]
    if overdue:
        ids = ", ".join(str(d.id) for d in overdue)
        parts.append(
            f"failed drill{'s' if len(overdue) > 1 else ''} {ids} not followed by a pass within {human(grace)}"
        )
    if pending:
        ids = ", ".join(str(d.id) for d in pending)
        parts.append(f"drill{'s' if len(pending) > 1 else ''} {ids} failed and {human(grace)} grace is still running")
    return "; ".join(parts) + "."


check = per_target(check_target)
