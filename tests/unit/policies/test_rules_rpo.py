"""RPO: the age of the newest snapshot now, and the time-weighted share of the period within the RPO."""

from __future__ import annotations

from preuve.policies.facts import Verdict
from preuve.policies.period import Period
from preuve.policies.rules import rpo
from preuve.policies.rules._timeline import gaps, longest_between, total

from .factories import DAY, HOUR, day, period, policy, probe, snap, target

DAILY = policy(rpo="1d")


def test_snapshot_before_the_period_and_a_gap_in_the_middle() -> None:
    # covered: [0, 0.5) by the snapshot taken before the period, [2, 3), [9, 10): 2.5 days of 10
    t = target(snapshots=[snap("s1", day(-0.5)), snap("s2", day(2)), snap("s3", day(9))], probes=[probe(day(10))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.value["share"] == 0.25
    assert r.value["age_s"] == 86400  # exactly the RPO: still met now
    assert r.value["uncovered_s"] == 7.5 * 86400
    assert r.value["longest_gap_s"] == 7 * 86400  # from day 2 to day 9
    assert r.verdict is Verdict.VIOLATED  # the gap lies between listings: a fact
    assert r.value["newest_snapshot"] == "s3"
    assert r.evidence["snapshots"] == ["s3", "s2"]


def test_every_day_covered() -> None:
    t = target(snapshots=[snap(f"s{k}", day(k - 0.25)) for k in range(11)], probes=[probe(day(10))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.verdict is Verdict.MET
    assert r.value["share"] == 1.0
    assert r.value["age_s"] == 0.25 * 86400
    assert r.value["longest_gap_s"] == 86400
    assert r.threshold == {"rpo_s": 86400, "share": 1.0}


def test_gap_before_the_first_and_after_the_last_listing_is_unknown() -> None:
    # Preuve first listed the repository at day 3 and last at day 6.5: days 0-3 and 7-10 were not watched
    snaps = [snap(f"s{k}", day(k)) for k in (3, 4, 5, 6)]
    t = target(snapshots=snaps, probes=[probe(day(3)), probe(day(6.5))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.value["share"] == 0.4
    assert r.value["age_s"] == 4 * 86400
    assert r.value["longest_gap_s"] == 4 * 86400  # day 6 to the end of the period
    assert r.verdict is Verdict.UNKNOWN
    assert "no listing since" in r.reason


def test_gap_seen_by_a_later_listing_is_violated() -> None:
    snaps = [snap(f"s{k}", day(k)) for k in (3, 4, 5, 6)]
    t = target(snapshots=snaps, probes=[probe(day(3)), probe(day(8))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.value["share"] == 0.4
    assert r.verdict is Verdict.VIOLATED


def test_no_snapshot_at_all() -> None:
    listed = target(probes=[probe(day(0)), probe(day(10))])
    r = rpo.check_target(DAILY, listed, period(0, 10))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["share"] == 0.0
    assert r.value["age_s"] is None
    assert r.value["longest_gap_s"] == 10 * 86400
    assert "No snapshot in the repository" in r.reason

    never_listed = rpo.check_target(DAILY, target(), period(0, 10))
    assert never_listed.verdict is Verdict.UNKNOWN
    assert never_listed.value["share"] is None


def test_one_snapshot() -> None:
    t = target(snapshots=[snap("only", day(5))], probes=[probe(day(10))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.value["share"] == 0.1
    assert r.value["age_s"] == 5 * 86400
    assert r.value["longest_gap_s"] == 5 * 86400  # day 0 (nothing known before) to day 5, and day 5 to 10
    assert r.verdict is Verdict.VIOLATED


def test_forgotten_snapshots_still_count_for_the_history() -> None:
    # daily snapshots, the first five forgotten at day 9: they protected their days all the same
    snaps = [
        snap(f"s{k}", day(k), gone=day(9) if k < 5 else None, last=day(8.5) if k < 5 else day(10)) for k in range(10)
    ]
    t = target(snapshots=snaps, probes=[probe(day(10))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.value["share"] == 1.0
    assert r.verdict is Verdict.MET


def test_deleting_the_newest_snapshot_opens_a_gap() -> None:
    snaps = [snap(f"s{k}", day(k)) for k in range(9)] + [snap("s9", day(9), gone=day(9.5))]
    t = target(snapshots=snaps, probes=[probe(day(10))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.value["share"] == 0.95  # day 9.5 to 10 without a snapshot younger than a day
    assert r.value["newest_snapshot"] == "s8"
    assert r.value["age_s"] == 2 * 86400
    assert r.verdict is Verdict.VIOLATED


def test_snapshots_after_the_end_of_the_period_are_ignored() -> None:
    t = target(snapshots=[snap("old", day(-2)), snap("later", day(12))], probes=[probe(day(0)), probe(day(12))])
    r = rpo.check_target(DAILY, t, period(0, 10))
    assert r.value["newest_snapshot"] == "old"
    assert r.value["share"] == 0.0
    assert r.value["longest_gap_s"] == 12 * 86400  # since the last snapshot before the period
    assert r.verdict is Verdict.VIOLATED


def test_an_instant_has_no_share() -> None:
    t = target(snapshots=[snap("s", day(9.5))], probes=[probe(day(10))])
    r = rpo.check_target(DAILY, t, Period(day(10), day(10)))
    assert r.value["share"] is None
    assert r.verdict is Verdict.MET


def test_overdue_but_not_listed_since_it_went_stale_is_unknown() -> None:
    t = target(snapshots=[snap("s", day(8.5))], probes=[probe(day(9))])
    r = rpo.check_target(DAILY, t, Period(day(10), day(10)))
    assert r.verdict is Verdict.UNKNOWN


def test_timeline_helpers() -> None:
    spans = [(day(1), day(2)), (day(1.5), day(3)), (day(5), day(6))]
    assert gaps(spans, day(0), day(10)) == [(day(0), day(1)), (day(3), day(5)), (day(6), day(10))]
    assert total(gaps(spans, day(0), day(10))) == 7 * DAY
    assert longest_between([day(-1), day(4)], day(0), day(10)) == (day(4), day(10))
    assert longest_between([], day(0), day(10)) == (day(0), day(10))
    assert longest_between([day(3)], day(3), day(3) + HOUR) == (day(3), day(3) + HOUR)
