"""Drill frequency: a pass at least every `drill.every`, each failure followed by a pass within `drill.grace`."""

from __future__ import annotations

from preuve.policies.facts import Verdict
from preuve.policies.rules import drills

from .factories import day, drill, period, policy, probe, target

WEEKLY = policy(drill={"every": "7d", "grace": "2d"})


def test_a_pass_every_five_days_is_met() -> None:
    runs = [drill("sample", "passed", day(k), did=k) for k in (-3, 2, 7, 12, 17, 22, 27)]
    r = drills.check_target(WEEKLY, target(drills=runs, probes=[probe(day(-30))]), period(0, 30))
    assert r.verdict is Verdict.MET
    assert r.value["longest_gap_s"] == 5 * 86400
    assert r.value["passed"] == 6
    assert r.threshold == {"every_s": 7 * 86400, "grace_s": 2 * 86400}


def test_ten_days_without_a_pass_is_violated() -> None:
    runs = [drill("sample", "passed", day(k), did=k) for k in (-3, 2, 12, 17, 22, 27)]
    r = drills.check_target(WEEKLY, target(drills=runs, probes=[probe(day(-30))]), period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["longest_gap_s"] == 10 * 86400
    assert r.evidence["drills"] == [2, 12]


def test_integrity_runs_do_not_count_as_restore_drills() -> None:
    runs = [drill("integrity", "passed", day(k)) for k in range(0, 30, 3)]
    r = drills.check_target(WEEKLY, target(drills=runs, probes=[probe(day(-30))]), period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["last_pass"] is None
    assert "No passing drill" in r.reason


def test_failure_followed_by_a_pass_within_grace_is_met() -> None:
    runs = [drill("sample", "passed", day(k)) for k in (1, 6, 11, 16, 21, 26)]
    runs.append(drill("sample", "failed", day(12), did=900))
    runs.append(drill("sample", "passed", day(13)))
    r = drills.check_target(WEEKLY, target(drills=runs, probes=[probe(day(-1))]), period(0, 30))
    assert r.verdict is Verdict.MET
    assert r.value["failed"] == 1
    assert r.value["unrecovered"] == []


def test_failure_not_followed_by_a_pass_within_grace_is_violated() -> None:
    runs = [drill("sample", "passed", day(k)) for k in (1, 6, 11, 16, 21, 26)]
    runs.append(drill("full", "error", day(12), did=901))  # 4 days until the next pass, grace is 2
    r = drills.check_target(WEEKLY, target(drills=runs, probes=[probe(day(-1))]), period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["unrecovered"] == [901]
    assert "901" in r.reason


def test_failure_whose_grace_is_still_running_is_pending() -> None:
    runs = [drill("sample", "passed", day(k)) for k in (1, 6, 11, 16, 21, 26)]
    runs.append(drill("sample", "failed", day(29), did=902))
    r = drills.check_target(WEEKLY, target(drills=runs, probes=[probe(day(-1))]), period(0, 30))
    assert r.verdict is Verdict.MET
    assert r.value["pending"] == [902]
    assert "still running" in r.reason


def test_a_target_watched_for_two_days_is_not_late_yet() -> None:
    r = drills.check_target(WEEKLY, target(probes=[probe(day(28))]), period(0, 30))
    assert r.verdict is Verdict.MET
    assert r.value["longest_gap_s"] == 2 * 86400
    assert "first is due by 2024-06-05" in r.reason


def test_nothing_recorded_is_unknown() -> None:
    r = drills.check_target(WEEKLY, target(), period(0, 30))
    assert r.verdict is Verdict.UNKNOWN


def test_running_drills_do_not_count() -> None:
    runs = [drill("sample", "running", None), drill("sample", "passed", day(31))]  # finished after the period
    r = drills.check_target(WEEKLY, target(drills=runs, probes=[probe(day(-30))]), period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["passed"] == 0
