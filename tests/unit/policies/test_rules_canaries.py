"""Canaries: each declared canary restored and matching in the latest restore drill."""

from __future__ import annotations

from preuve.policies.facts import Verdict
from preuve.policies.rules import canaries

from .factories import day, drill, period, policy, target

P = policy()
TWO = ("/data/canary.txt", "/data/compta/canary.xlsx")


def test_none_declared_is_unknown_with_advice() -> None:
    r = canaries.check_target(P, target(drills=[drill("sample", "passed", day(1))]), period(0, 10))
    assert r.verdict is Verdict.UNKNOWN
    assert "canaries:" in r.reason


def test_all_matching_in_the_latest_drill_is_met() -> None:
    runs = [
        drill("sample", "failed", day(1), failed_canaries=TWO[:1]),
        drill("full", "passed", day(2), did=8, canaries_checked=2),
    ]
    r = canaries.check_target(P, target(canaries=TWO, drills=runs), period(0, 10))
    assert r.verdict is Verdict.MET
    assert r.value == {"declared": 2, "checked": 2, "failed": [], "drill": 8}
    assert r.evidence == {"drills": [8]}


def test_a_failed_canary_in_the_latest_drill_is_violated() -> None:
    runs = [drill("sample", "failed", day(2), canaries_checked=2, failed_canaries=TWO[1:])]
    r = canaries.check_target(P, target(canaries=TWO, drills=runs), period(0, 10))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["failed"] == [TWO[1]]


def test_fewer_checked_than_declared_is_unknown() -> None:
    runs = [drill("sample", "passed", day(2), canaries_checked=1)]
    assert canaries.check_target(P, target(canaries=TWO, drills=runs), period(0, 10)).verdict is Verdict.UNKNOWN


def test_errors_and_integrity_runs_are_not_the_latest_drill() -> None:
    runs = [
        drill("sample", "passed", day(2), canaries_checked=2),
        drill("sample", "error", day(3)),
        drill("integrity", "passed", day(4)),
    ]
    assert canaries.check_target(P, target(canaries=TWO, drills=runs), period(0, 10)).verdict is Verdict.MET
    assert canaries.check_target(P, target(canaries=TWO), period(0, 10)).verdict is Verdict.UNKNOWN
