"""Integrity coverage: parts n/t of `check --read-data-subset` read within the window."""

from __future__ import annotations

from preuve.policies.facts import DrillFact, Verdict
from preuve.policies.rules import integrity

from .factories import day, drill, period, policy, probe, target

P = policy(integrity={"window": "30d"})
OLD = [probe(day(-100))]  # watched for long before the window


def runs(*parts: str, status: str = "passed", start: float = 5) -> list[DrillFact]:
    return [drill("integrity", status, day(start + i), subset=p) for i, p in enumerate(parts)]


def test_every_part_read_within_the_window() -> None:
    r = integrity.check_target(P, target(drills=runs("1/4", "2/4", "3/4", "4/4"), probes=OLD), period(0, 30))
    assert r.verdict is Verdict.MET
    assert r.value == {"share": 1.0, "parts_read": [1, 2, 3, 4], "parts": 4, "failed": []}


def test_half_the_repository_read_is_violated() -> None:
    r = integrity.check_target(P, target(drills=runs("1/4", "2/4", "1/4"), probes=OLD), period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["share"] == 0.5
    assert r.value["parts_read"] == [1, 2]


def test_parts_read_before_the_window_do_not_count() -> None:
    drills = runs("1/2", start=-10) + runs("2/2", start=10)  # part 1 read 40 days before the end
    r = integrity.check_target(P, target(drills=drills, probes=OLD), period(0, 30))
    assert r.value["share"] == 0.5
    assert r.verdict is Verdict.VIOLATED


def test_only_the_current_rotation_counts() -> None:
    # three parts of 3 then a switch to 2 parts: 1/3..3/3 cover other slices than 1/2
    drills = runs("1/3", "2/3", "3/3", "1/2")
    r = integrity.check_target(P, target(drills=drills, probes=OLD), period(0, 30))
    assert r.value["parts"] == 2
    assert r.value["share"] == 0.5


def test_a_failed_run_in_the_window_is_violated() -> None:
    drills = runs("1/2", "2/2") + runs("1/2", status="failed", start=20)
    r = integrity.check_target(P, target(drills=drills, probes=OLD), period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert len(r.value["failed"]) == 1
    assert r.value["share"] == 1.0


def test_errors_read_nothing_but_are_not_damage() -> None:
    drills = runs("1/2", "2/2") + runs("1/2", status="error", start=20)
    assert integrity.check_target(P, target(drills=drills, probes=OLD), period(0, 30)).verdict is Verdict.MET


def test_young_repository_partly_read_is_unknown() -> None:
    r = integrity.check_target(P, target(drills=runs("1/4", start=25), probes=[probe(day(24))]), period(0, 30))
    assert r.verdict is Verdict.UNKNOWN
    assert r.value["share"] == 0.25


def test_never_checked_is_violated() -> None:
    r = integrity.check_target(P, target(probes=OLD), period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["parts"] is None
