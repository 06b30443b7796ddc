"""Evaluating a whole policy: the overall verdict, the order of the rules, and the JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

from preuve.policies.evaluate import evaluate, report_json
from preuve.policies.facts import ClientFacts, RuleResult, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules import RULES

from .factories import HOUR, client, day, drill, period, policy, probe, s3_facts, snap, target

NAMES = {
    "rpo",
    "rto",
    "drill-frequency",
    "integrity-coverage",
    "retention",
    "copies",
    "immutability",
    "secrets",
    "anomalies",
    "vanished-snapshots",
    "canaries",
}


def fixed(*results: RuleResult):  # type: ignore[no-untyped-def]
    def rule(policy: Policy, facts: ClientFacts, period: Period) -> list[RuleResult]:
        return list(results)

    return rule


def res(rule: str, target: str | None, verdict: Verdict) -> RuleResult:
    return RuleResult(rule, target, verdict, None, None, "why")


def test_overall_verdict() -> None:
    facts = client()
    met, unknown, violated = (res("a", None, v) for v in (Verdict.MET, Verdict.UNKNOWN, Verdict.VIOLATED))
    assert evaluate(policy(), facts, period(0, 1), {"a": fixed(met)}).verdict is Verdict.MET
    assert evaluate(policy(), facts, period(0, 1), {"a": fixed(met, unknown)}).verdict is Verdict.UNKNOWN
    assert evaluate(policy(), facts, period(0, 1), {"a": fixed(unknown, violated)}).verdict is Verdict.VIOLATED
    assert evaluate(policy(), facts, period(0, 1), {}).verdict is Verdict.MET


def test_rules_sorted_by_rule_then_target() -> None:
    rules = {
        "x": fixed(res("rpo", "acme/b", Verdict.MET), res("rpo", "acme/a", Verdict.MET)),
        "y": fixed(res("copies", None, Verdict.MET), res("anomalies", "acme/a", Verdict.MET)),
    }
    report = evaluate(policy(), client(), period(0, 1), rules)
    assert [(r.rule, r.target) for r in report.rules] == [
        ("anomalies", "acme/a"),
        ("copies", None),
        ("rpo", "acme/a"),
        ("rpo", "acme/b"),
    ]


def test_every_rule_is_registered() -> None:
    assert set(RULES) == NAMES


def test_a_whole_client_evaluates_to_json(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("x")
    secret.chmod(0o600)
    snaps = [snap(f"s{k}", day(k) + HOUR, size=10**9, files=100, changed=5) for k in range(-1, 30)]
    runs = [
        drill("sample", "passed", day(k), estimated_full_restore_s=600.0, canaries_checked=1) for k in range(0, 30, 3)
    ]
    nas = target("nas", snapshots=snaps, drills=runs, probes=[probe(day(30))], password_file=secret, canaries=("/c",))
    s3 = target("s3", kind="s3", location="offsite", media="object-storage", snapshots=snaps,
                probes=[probe(day(30), facts=s3_facts())], password_file=secret)  # fmt: skip
    p = policy(copies={"min": 2, "media": 2, "offsite": 1, "immutable": 1})
    report = evaluate(p, client(nas, s3), period(0, 30))
    doc = report_json(report)
    assert set(doc) == {"client", "verdict", "rules"}
    assert doc["client"] == "acme"
    assert {r["rule"] for r in doc["rules"]} == NAMES
    for rule in doc["rules"]:
        assert set(rule) == {"rule", "target", "verdict", "value", "threshold", "evidence", "references", "reason"}
        assert rule["verdict"] in {"met", "violated", "unknown"}
        assert rule["references"]
    json.dumps(doc)  # every value is JSON-serialisable as it stands
    verdicts = {(r["rule"], r["target"]): r["verdict"] for r in doc["rules"]}
    assert verdicts[("rpo", "acme/nas")] == "met"
    assert verdicts[("copies", None)] == "met"
    assert verdicts[("immutability", "acme/s3")] == "met"
    assert verdicts[("secrets", "acme/nas")] == "met"
    assert verdicts[("canaries", "acme/s3")] == "unknown"  # none declared there
    assert doc["verdict"] == "violated"  # no integrity run at all, drills only on one target
