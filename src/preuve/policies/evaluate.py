"""Evaluate a client's policy: every rule over the client's facts, and one overall verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from preuve.policies.facts import ClientFacts, RuleResult, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules import RULES, Rule
from preuve.policies.rules._common import worst


@dataclass(frozen=True)
class PolicyReport:
    client: str
    name: str  # the client's display name
    policy: str
    period: Period
    verdict: Verdict
    rules: tuple[RuleResult, ...]


def _order(r: RuleResult) -> tuple[str, int, str]:
    return r.rule, 0 if r.target is None else 1, r.target or ""  # client-wide first within a rule


def evaluate(policy: Policy, facts: ClientFacts, period: Period, rules: Mapping[str, Rule] = RULES) -> PolicyReport:
    """Violated if any rule is violated, else unknown if any could not be measured, else met."""
    results = sorted((r for rule in rules.values() for r in rule(policy, facts, period)), key=_order)
    return PolicyReport(
        client=facts.client_id,
        name=facts.name,
        policy=policy.name,
        period=period,
        verdict=worst(r.verdict for r in results),
        rules=tuple(results),
    )


def rule_json(r: RuleResult) -> dict[str, Any]:
    return {
        "rule": r.rule,
        "target": r.target,
        "verdict": r.verdict.value,
        "value": r.value,
        "threshold": r.threshold,
        "evidence": r.evidence,
        "references": list(r.references),
        "reason": r.reason,
    }


def report_json(report: PolicyReport) -> dict[str, Any]:
    return {"client": report.client, "verdict": report.verdict.value, "rules": [rule_json(r) for r in report.rules]}
