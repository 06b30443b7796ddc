"""Vanished snapshots: gone before the retention policy let restic's forget remove them."""

from __future__ import annotations

from preuve.policies.facts import SnapshotFact, Verdict
from preuve.policies.rules import vanished

from .factories import HOUR, day, period, policy, probe, snap, target

KEEP_7 = policy(retention={"daily": 7, "weekly": 0, "monthly": 0})


def nightly(days: int = 20) -> list[SnapshotFact]:
    """A backup at 01:00 then `forget --keep-daily 7` at 02:00; the 03:00 probe no longer lists the 8th-newest."""
    snaps = []
    for k in range(days):
        forgotten = k + 7 < days
        gone = day(k + 7) + 3 * HOUR if forgotten else None
        snaps.append(snap(f"d{k:02d}", day(k) + HOUR, last=(gone - HOUR) if gone else day(days) - HOUR, gone=gone))
    return snaps


PROBES = [probe(day(k) + 3 * HOUR) for k in range(21)]


def test_forgotten_as_the_policy_allows_is_met() -> None:
    r = vanished.check_target(KEEP_7, target(snapshots=nightly(), probes=PROBES), period(10, 20))
    assert r.verdict is Verdict.MET
    assert r.value == {"vanished": [], "newest_vanished": [], "forgotten": 10}  # d03 to d12, gone on days 10 to 19
    assert r.threshold == {"vanished": 0, "keep": {"daily": 7}}


def test_a_snapshot_the_policy_keeps_deleted_early_is_violated() -> None:
    # deleted after the last nightly forget: an earlier deletion would have made the client's forget keep more
    snaps = [s if s.id != "d15" else snap("d15", s.time, gone=day(19) + 9 * HOUR) for s in nightly()]
    r = vanished.check_target(KEEP_7, target(snapshots=snaps, probes=PROBES), period(10, 20))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["vanished"] == ["d15"]
    assert r.value["newest_vanished"] == []
    assert r.evidence == {"snapshots": ["d15"]}
    assert "retention policy still keeps" in r.reason


def test_the_newest_snapshot_vanishing_is_always_violated() -> None:
    # even with no retention asked: restic never forgets the newest snapshot of a source
    snaps = [*nightly(19), snap("d19", day(19) + HOUR, gone=day(19) + 9 * HOUR)]
    no_retention = policy(retention={"daily": 0, "weekly": 0, "monthly": 0})
    for p in (KEEP_7, no_retention):
        r = vanished.check_target(p, target(snapshots=snaps, probes=PROBES), period(10, 20))
        assert r.verdict is Verdict.VIOLATED
        assert r.value["newest_vanished"] == ["d19"]


def test_the_oldest_kept_while_counts_are_left() -> None:
    # three days of history under keep-daily 7: forget keeps them all, so removing the oldest is early
    snaps = [snap("d0", day(0), gone=day(2.5)), snap("d1", day(1)), snap("d2", day(2))]
    r = vanished.check_target(KEEP_7, target(snapshots=snaps, probes=[probe(day(3))]), period(0, 3))
    assert r.value["vanished"] == ["d0"]


def test_other_sources_do_not_shield_a_snapshot() -> None:
    # the newest of host b vanished; host a has newer snapshots, but forget works per host and paths
    snaps = [snap("a", day(5), host="a"), snap("b", day(1), host="b", gone=day(4))]
    r = vanished.check_target(KEEP_7, target(snapshots=snaps, probes=[probe(day(4))]), period(0, 6))
    assert r.value["newest_vanished"] == ["b"]


def test_no_listing_during_the_period_is_unknown() -> None:
    r = vanished.check_target(KEEP_7, target(snapshots=nightly(), probes=PROBES), period(30, 40))
    assert r.verdict is Verdict.UNKNOWN


def test_after_an_early_deletion_forget_must_reach_one_day_further_back() -> None:
    # d15 deleted on day 17: restic's next forget (keep-daily 7) would then keep d11 too, so d11 going is early
    snaps = [s if s.id != "d15" else snap("d15", s.time, gone=day(17) + 3 * HOUR) for s in nightly()]
    r = vanished.check_target(KEEP_7, target(snapshots=snaps, probes=PROBES), period(10, 20))
    assert r.value["vanished"] == ["d11", "d12", "d15"]
