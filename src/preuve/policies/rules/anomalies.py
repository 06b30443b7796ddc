"""Anomalies: the warning signs of ransomware or a broken backup job, from one snapshot to the next.

The newest snapshot is compared with the one before it from the same source (host and paths): its size or file
count dropping by more than the policy's share (a lost mount, files deleted), or more than ``max_changed`` of its
files changed (`restic diff`: mass encryption rewrites everything). Thresholds are exceeded strictly.
"""

from __future__ import annotations

from preuve.policies.facts import ANSSI, ISO27001, NIS2, RuleResult, SnapshotFact, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules._common import per_target, percent, present_at, result, short, source_of, taken_by

RULE = "anomalies"
REFERENCES = (ISO27001, NIS2, ANSSI)


def drop(before: int | None, after: int | None) -> float | None:
    """The share lost from ``before`` to ``after`` (0 when it grew); None when either is unmeasured."""
    if before is None or after is None:
        return None
    if before <= 0:
        return 0.0
    return max(0.0, (before - after) / before)


def changed_share(snapshot: SnapshotFact) -> float | None:
    if snapshot.changed_files is None or snapshot.file_count is None:
        return None
    if snapshot.file_count == 0:
        return 1.0 if snapshot.changed_files else 0.0
    return snapshot.changed_files / snapshot.file_count


def previous_of(target: TargetFacts, newest: SnapshotFact) -> SnapshotFact | None:
    """The snapshot of the same source taken just before, even if forgotten since: its stats were recorded."""
    before = [s for s in taken_by(target, newest.time) if source_of(s) == source_of(newest) and s.time < newest.time]
    return before[-1] if before else None


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    limits = policy.anomalies
    threshold = {
        "max_size_drop": limits.max_size_drop,
        "max_files_drop": limits.max_files_drop,
        "max_changed": limits.max_changed,
    }
    present = present_at(target, period.at)
    newest = present[-1] if present else None
    previous = previous_of(target, newest) if newest else None
    if newest is None or previous is None:
        reason = (
            "No snapshot listed yet." if newest is None else "Only one snapshot of this source: nothing to compare."
        )
        snapshot = newest.id if newest else None
        empty = {"size_drop": None, "files_drop": None, "changed": None, "snapshot": snapshot, "previous": None}
        return result(RULE, target.ref, Verdict.UNKNOWN, empty, threshold, reason, REFERENCES)
    measured = {
        "size_drop": drop(previous.size_bytes, newest.size_bytes),
        "files_drop": drop(previous.file_count, newest.file_count),
        "changed": changed_share(newest),
    }
    limit = {"size_drop": limits.max_size_drop, "files_drop": limits.max_files_drop, "changed": limits.max_changed}
    over = [name for name, share in measured.items() if share is not None and share > limit[name]]
    missing = [name for name, share in measured.items() if share is None]
    verdict = Verdict.VIOLATED if over else Verdict.UNKNOWN if missing else Verdict.MET
    value = {k: round(v, 6) if v is not None else None for k, v in measured.items()}
    return result(
        RULE,
        target.ref,
        verdict,
        {**value, "snapshot": newest.id, "previous": previous.id},
        threshold,
        _reason(newest, previous, measured, limit, over, missing),
        REFERENCES,
        snapshots=[newest.id, previous.id],
    )


_WHAT = {"size_drop": "size dropped by", "files_drop": "file count dropped by", "changed": "files changed:"}


def _reason(
    newest: SnapshotFact,
    previous: SnapshotFact,
    measured: dict[str, float | None],
    limit: dict[str, float],
    over: list[str],
    missing: list[str],
) -> str:
    against = f"snapshot {short(newest.id)} against {short(previous.id)}"
    if over:
        signs = ", ".join(f"{_WHAT[n]} {percent(measured[n] or 0)} (limit {percent(limit[n])})" for n in over)
        return f"Warning signs in {against}: {signs}. Check the source for ransomware or a broken backup job."
    if missing:
        names = ", ".join(n.replace("_", " ") for n in missing)
        return f"No anomaly seen in {against}, but {names} could not be measured (no restic stats or diff recorded)."
    return f"No anomaly in {against}: size, file count and changed files within the limits."


check = per_target(check_target)
