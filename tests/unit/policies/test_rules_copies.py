"""Copies, 3-2-1-1-0: per source, enough targets on enough media, offsite, immutable, with no failed drill."""

from __future__ import annotations

from preuve.policies.facts import TargetFacts, Verdict
from preuve.policies.rules import copies

from .factories import client, day, drill, period, policy, probe, s3_facts, snap, target

P = policy(copies={"min": 3, "media": 2, "offsite": 1, "immutable": 1}, immutability={"min_retention": "30d"})


def holding(name: str, host: str = "srv", **kw: object) -> TargetFacts:
    return target(name, snapshots=[snap(f"{name}-1", day(9), host=host)], **kw)  # type: ignore[arg-type]


def locked_s3(name: str = "s3", days: int = 30) -> TargetFacts:
    return holding(
        name,
        kind="s3",
        location="offsite",
        media="object-storage",
        probes=[probe(day(9), pid=77, facts=s3_facts(days=days))],
    )


def test_three_two_one_one_zero_is_met() -> None:
    facts = client(holding("disk"), holding("nas", kind="sftp", media="nas"), locked_s3())
    [r] = copies.check(P, facts, period(0, 10))
    assert r.verdict is Verdict.MET
    assert r.target is None
    [source] = r.value["sources"]
    assert source == {
        "host": "srv",
        "paths": ["/data"],
        "targets": ["acme/disk", "acme/nas", "acme/s3"],
        "copies": 3,
        "media": ["disk", "nas", "object-storage"],
        "offsite": 1,
        "immutable": 1,
        "immutable_declared": 0,
        "failed_drills": 0,
    }
    assert r.evidence["targets"] == ["acme/disk", "acme/nas", "acme/s3"]
    assert r.evidence["probes"] == [77]
    assert r.threshold == {"copies": 3, "media": 2, "offsite": 1, "immutable": 1, "failed_drills": 0}


def test_one_kind_of_medium_is_violated() -> None:
    facts = client(holding("a"), holding("b"), holding("c", location="offsite", kind="rest", append_only=True))
    [r] = copies.check(P, facts, period(0, 10))
    assert r.verdict is Verdict.VIOLATED
    assert "1 of 2 kinds of medium" in r.reason


def test_declared_append_only_counts_but_says_so() -> None:
    rest = holding("rest", kind="rest", location="offsite", media="other", append_only=True)
    facts = client(holding("disk"), holding("nas", media="nas"), rest)
    [r] = copies.check(P, facts, period(0, 10))
    assert r.verdict is Verdict.MET
    assert r.value["sources"][0]["immutable_declared"] == 1
    assert "declared, not verified" in r.reason


def test_retention_shorter_than_the_minimum_is_not_immutable() -> None:
    facts = client(holding("disk"), holding("nas", media="nas"), locked_s3(days=7))
    [r] = copies.check(P, facts, period(0, 10))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["sources"][0]["immutable"] == 0


def test_a_failed_drill_in_the_period_is_violated() -> None:
    nas = holding("nas", media="nas", drills=[drill("sample", "failed", day(3), did=55)])
    facts = client(holding("disk"), nas, locked_s3())
    [r] = copies.check(P, facts, period(0, 10))
    assert r.verdict is Verdict.VIOLATED
    assert r.evidence["drills"] == [55]
    assert r.value["sources"][0]["failed_drills"] == 1


def test_a_failed_drill_before_the_period_does_not_count() -> None:
    nas = holding("nas", media="nas", drills=[drill("sample", "error", day(-3))])
    [r] = copies.check(P, client(holding("disk"), nas, locked_s3()), period(0, 10))
    assert r.verdict is Verdict.MET


def test_each_source_is_judged_apart() -> None:
    # the server has its three copies, the laptop only one
    facts = client(holding("disk"), holding("nas", media="nas"), locked_s3(), holding("usb", host="laptop"))
    [r] = copies.check(P, facts, period(0, 10))
    assert r.verdict is Verdict.VIOLATED
    assert [s["host"] for s in r.value["sources"]] == ["srv", "laptop"]
    assert "laptop:/data on acme/usb" in r.reason


def test_a_target_without_snapshots_makes_a_shortfall_unknown() -> None:
    facts = client(holding("disk"), locked_s3(), target("nas", media="nas"))
    [r] = copies.check(P, facts, period(0, 10))
    assert r.verdict is Verdict.UNKNOWN
    assert r.value["undetermined"] == ["acme/nas"]


def test_no_snapshot_anywhere_is_unknown() -> None:
    [r] = copies.check(P, client(target("a"), target("b")), period(0, 10))
    assert r.verdict is Verdict.UNKNOWN
