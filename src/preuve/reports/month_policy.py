"""The policy's verdicts over the period, the plan's headline, and the recommendations they call for.

Rules are evaluated by the policy engine exactly as ``preuve policy check CLIENT --from START --to END`` does:
:func:`preuve.policies.gather.gather` reads the store as it stood at the period's end and
:func:`preuve.policies.evaluate.evaluate` judges the period as of its end. The caller verifies the client's ledger
first: the drill and probe rows the engine reads are the ones the ledger vouches for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from preuve.config.loader import Config
from preuve.policies.cli_check import show
from preuve.policies.evaluate import PolicyReport, evaluate
from preuve.policies.facts import RuleResult, Verdict
from preuve.policies.gather import gather
from preuve.policies.period import Period
from preuve.policies.rules._common import span
from preuve.reports.values import jsonable
from preuve.store.db import Store

RuleKey = tuple[str, str | None]

# Per rule: the code of a violated verdict, and of an unknown one (see the module docstring of preuve.reports.month).
VIOLATED_CODES = {
    "rpo": "rpo-violated",
    "rto": "rto-exceeded",
    "drill-frequency": "drill-frequency",
    "integrity-coverage": "integrity-coverage",
    "retention": "retention-short",
    "copies": "copies-insufficient",
    "immutability": "immutability-missing",
    "secrets": "secrets-exposed",
    "anomalies": "anomaly",
    "vanished-snapshots": "snapshots-vanished",
    "canaries": "canaries-failed",
}
UNKNOWN_CODES = {
    "rto": "rto-unconfirmed",
    "integrity-coverage": "integrity-coverage",
    "immutability": "immutability-unverified",
    "canaries": "canaries-missing",
}


def evaluate_period(config: Config, store: Store, client_id: str, start: datetime, end: datetime) -> PolicyReport:
    facts = gather(config, store, client_id, until=end)
    return evaluate(config.client_policy(client_id), facts, Period(start, end))


def by_key(report: PolicyReport) -> dict[RuleKey, RuleResult]:
    return {(r.rule, r.target): r for r in report.rules}


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


def _duration(value: Any) -> str:
    return span(float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _share(value: Any) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def display(result: RuleResult) -> tuple[str, str]:
    """The measured value and the threshold as short texts (units, not sentences: the renderer translates these)."""
    value, threshold = result.value, result.threshold
    if result.rule == "rpo":
        return _duration(_get(value, "age_s")), _duration(_get(threshold, "rpo_s"))
    if result.rule == "rto":
        return _duration(_get(value, "estimate_s")), _duration(_get(threshold, "rto_s"))
    if result.rule == "drill-frequency":
        return _duration(_get(value, "longest_gap_s")), _duration(_get(threshold, "every_s"))
    if result.rule == "integrity-coverage":
        return _share(_get(value, "share")), _share(_get(threshold, "share"))
    if result.rule == "immutability":
        if _get(value, "append_only") == "declared":
            return "append-only (declared)", "required"
        lock, mode, kept = _get(value, "object_lock"), _get(value, "mode"), _get(value, "retention_s")
        shown = f"{mode} {_duration(kept)}" if lock is True and mode else ("off" if lock is False else "-")
        return shown, "required"
    return show(value), show(threshold)


def rules_json(report: PolicyReport) -> list[dict[str, Any]]:
    rows = []
    for result in report.rules:
        value, threshold = display(result)
        rows.append(
            {
                "rule": result.rule,
                "target": result.target,
                "verdict": result.verdict.value,
                "value": value,
                "threshold": threshold,
                "reason": result.reason,
                "references": list(result.references),
                "measured": jsonable(result.value),
                "required": jsonable(result.threshold),
                "evidence": jsonable(result.evidence),
            }
        )
    return rows


def plan(verdicts: Iterable[Verdict]) -> str:
    """met: every rule met; not-met: none met and one violated; unknown: none met, none violated (or no rule);
    partly: some met, others violated or not judged."""
    seen = set(verdicts)
    if not seen:
        return "unknown"
    if seen == {Verdict.MET}:
        return "met"
    if Verdict.MET in seen:
        return "partly"
    return "not-met" if Verdict.VIOLATED in seen else "unknown"


def restorable(targets: Sequence[Mapping[str, Any]], open_at_end: set[str]) -> str:
    """yes: every enabled target passed a restore drill in the period and none has a failure still open at its end;
    no: none passed; unknown: the ledger holds nothing about any enabled target in the period; partly otherwise."""
    enabled = [t for t in targets if t["enabled"]]
    if not enabled or not any(t["entries_in_period"] for t in enabled):
        return "unknown"
    tested = [t for t in enabled if t["tested"]]
    if not tested:
        return "no"
    if len(tested) == len(enabled) and not any(t["ref"] in open_at_end for t in enabled):
        return "yes"
    return "partly"


def recommendations(
    targets: Sequence[Mapping[str, Any]],
    rules: Mapping[RuleKey, RuleResult],
    open_at_end: set[str],
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(code: str, target: str | None, rule: str | None) -> None:
        item = {"code": code, "target": target, "rule": rule}
        if item not in found:
            found.append(item)

    drills_said: set[str] = set()
    integrity_said: set[str] = set()
    for target in targets:
        if not target["enabled"]:
            continue
        ref = target["ref"]
        if not target["entries_in_period"]:
            add("unknown-data", ref, None)
        if target["last_passed_drill"] is None:
            add("never-tested", ref, "drill-frequency")
            drills_said.add(ref)
        elif not target["tested"]:
            add("not-tested-this-month", ref, "drill-frequency")
            drills_said.add(ref)
        if ref in open_at_end:
            add("unresolved-failure", ref, "drill-frequency")
            drills_said.add(ref)
        if target["integrity"]["failed_runs"]:
            add("integrity-damage", ref, "integrity-coverage")
            integrity_said.add(ref)
    enabled = {t["ref"] for t in targets if t["enabled"]}
    for (rule, ref), result in rules.items():
        if ref is not None and ref not in enabled:
            continue
        if rule == "drill-frequency" and ref in drills_said:
            continue  # already said more precisely above
        if rule == "integrity-coverage" and ref in integrity_said:
            continue
        if result.verdict is Verdict.VIOLATED:
            add(VIOLATED_CODES.get(rule, "rule-violated"), ref, rule)
        elif result.verdict is Verdict.UNKNOWN:
            add(UNKNOWN_CODES.get(rule, "unknown-data"), ref, rule)
    return sorted(found, key=lambda r: (r["target"] or "", r["code"], r["rule"] or ""))
