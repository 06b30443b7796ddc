"""RTO: the estimated full restore against the RTO, confirmed by a recent full-restore drill."""

from __future__ import annotations

from preuve.policies.facts import Verdict
from preuve.policies.rules import rto

from .factories import day, drill, period, policy, snap, target

P = policy(rto="8h", drill={"full_restore_every": "180d"})
HOUR_S = 3600.0


def test_no_measurement_is_unknown() -> None:
    t = target(drills=[drill("integrity", "passed", day(1))])
    r = rto.check_target(P, t, period(0, 30))
    assert r.verdict is Verdict.UNKNOWN
    assert r.value["estimate_s"] is None


def test_estimate_over_the_rto_is_violated_even_unconfirmed() -> None:
    t = target(drills=[drill("sample", "passed", day(5), did=3, estimated_full_restore_s=10 * HOUR_S)])
    r = rto.check_target(P, t, period(0, 30))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["estimate_s"] == 36000
    assert r.evidence == {"drills": [3]}


def test_estimate_within_the_rto_without_a_full_restore_is_unconfirmed() -> None:
    t = target(drills=[drill("sample", "passed", day(5), estimated_full_restore_s=2 * HOUR_S)])
    r = rto.check_target(P, t, period(0, 30))
    assert r.verdict is Verdict.UNKNOWN
    assert "unconfirmed" in r.reason


def test_recent_full_restore_confirms() -> None:
    runs = [
        drill("full", "passed", day(-100), did=1, restore_s=3 * HOUR_S, estimated_full_restore_s=3.1 * HOUR_S),
        drill("sample", "passed", day(5), did=2, estimated_full_restore_s=2 * HOUR_S),
    ]
    r = rto.check_target(P, target(drills=runs), period(0, 30))
    assert r.verdict is Verdict.MET
    assert r.value == {"estimate_s": 7200, "full_restore_s": 3.1 * HOUR_S, "full_restore_drill": 1}
    assert r.evidence == {"drills": [2, 1]}


def test_full_restore_older_than_the_interval_does_not_confirm() -> None:
    runs = [
        drill("full", "passed", day(-200), restore_s=3 * HOUR_S, estimated_full_restore_s=3 * HOUR_S),
        drill("sample", "passed", day(5), estimated_full_restore_s=2 * HOUR_S),
    ]
    assert rto.check_target(P, target(drills=runs), period(0, 30)).verdict is Verdict.UNKNOWN


def test_failed_full_restore_does_not_confirm() -> None:
    runs = [drill("full", "failed", day(-10)), drill("sample", "passed", day(5), estimated_full_restore_s=HOUR_S)]
    assert rto.check_target(P, target(drills=runs), period(0, 30)).verdict is Verdict.UNKNOWN


def test_estimate_scales_with_the_newest_snapshot_size() -> None:
    # measured on 100 GB at 2 h; the repository now holds 500 GB: 10 h, over the 8 h RTO
    runs = [drill("sample", "passed", day(5), estimated_full_restore_s=2 * HOUR_S, bytes_in_snapshot=100 * 10**9)]
    t = target(drills=runs, snapshots=[snap("s", day(20), size=500 * 10**9)])
    r = rto.check_target(P, t, period(0, 30))
    assert r.value["estimate_s"] == 10 * HOUR_S
    assert r.verdict is Verdict.VIOLATED
