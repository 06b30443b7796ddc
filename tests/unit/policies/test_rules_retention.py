"""Retention: restic's forget semantics, and the depth the policy asks for still present in the repository."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from preuve.policies.facts import SnapshotFact, Verdict
from preuve.policies.model import RetentionRules
from preuve.policies.period import Period
from preuve.policies.rules import forget, retention

from .factories import HOUR, day, period, policy, snap, target

# --- restic forget ------------------------------------------------------------------------------------------------


def test_newest_of_each_day_and_the_oldest_while_counts_are_left() -> None:
    snaps = [
        snap("d0a", day(0) + HOUR),
        snap("d0b", day(0) + 13 * HOUR),
        snap("d1a", day(1) + HOUR),
        snap("d1b", day(1) + 13 * HOUR),
    ]
    keep = forget.kept(snaps, RetentionRules(daily=3, weekly=0, monthly=0))
    # d1b and d0b are the newest of their days; one count is left, so restic also keeps the oldest
    assert keep == {"d1b", "d0b", "d0a"}


def test_counts_run_out_before_the_oldest() -> None:
    snaps = [snap(f"d{k}", day(k) + HOUR) for k in range(5)]
    assert forget.kept(snaps, RetentionRules(daily=3, weekly=0, monthly=0)) == {"d4", "d3", "d2"}


def test_weekly_buckets_are_iso_weeks() -> None:
    # 2024-05-01 is a Wednesday: day 4 is Sunday 5 May (week 18), day 5 Monday 6 May (week 19)
    snaps = [snap(f"d{k}", day(k) + HOUR) for k in range(14)]
    assert forget.kept(snaps, RetentionRules(daily=0, weekly=2, monthly=0)) == {"d13", "d11"}
    assert forget.BUCKETS["weekly"](day(4)) == "2024-W18"
    assert forget.BUCKETS["weekly"](day(5)) == "2024-W19"


def test_daily_weekly_monthly_together() -> None:
    snaps = [snap(f"d{k}", day(k) + HOUR) for k in range(62)]  # 1 May to 1 July
    keep = forget.kept(snaps, RetentionRules(daily=2, weekly=2, monthly=3))
    # daily: 1 Jul (d61), 30 Jun (d60); weekly: 1 Jul (week 27), Sun 30 Jun (week 26);
    # monthly: 1 Jul, 30 Jun, 31 May (d30)
    assert keep == {"d61", "d60", "d30"}


def test_each_host_and_paths_is_forgotten_apart() -> None:
    snaps = [
        snap("a1", day(0), host="a"),
        snap("a2", day(1), host="a"),
        snap("b1", day(0), host="b"),
        snap("b2", day(0.5), host="b", paths=("/other",)),
    ]
    assert forget.kept(snaps, RetentionRules(daily=1, weekly=0, monthly=0)) == {"a2", "b1", "b2"}


def test_buckets_use_the_snapshot_own_timezone() -> None:
    paris = timezone(timedelta(hours=2))
    late = datetime(2024, 5, 2, 0, 30, tzinfo=paris)  # 1 May 22:30 UTC
    assert forget.BUCKETS["daily"](late) == "2024-05-02"
    assert forget.BUCKETS["daily"](late.astimezone(UTC)) == "2024-05-01"


def test_elapsed_buckets() -> None:
    assert forget.elapsed("daily", day(0) + HOUR, day(6)) == 7
    assert forget.elapsed("weekly", day(0), day(4)) == 1  # Wednesday to Sunday
    assert forget.elapsed("weekly", day(0), day(5)) == 2
    assert forget.elapsed("monthly", day(0), day(31)) == 2
    assert forget.elapsed("yearly", day(0), day(300)) == 2
    assert forget.elapsed("hourly", day(0) + 30 * timedelta(minutes=1), day(0) + 2 * HOUR) == 3


# --- the rule -----------------------------------------------------------------------------------------------------

POLICY = policy(retention={"daily": 7, "weekly": 4, "monthly": 3})
END = day(90)  # 30 July 2024; daily snapshots at 01:00 from 1 May to 29 July (a Monday)


def history(client_keeps: RetentionRules, days: int = 90) -> list[SnapshotFact]:
    """Daily snapshots, the ones the client's own forget did not keep gone half a day before the end."""
    taken = [snap(f"d{k:02d}", day(k) + HOUR) for k in range(days)]
    keep = forget.kept(taken, client_keeps)
    return [s if s.id in keep else snap(s.id, s.time, gone=END - 12 * HOUR) for s in taken]


def test_client_forget_as_deep_as_the_policy_is_met() -> None:
    t = target(snapshots=history(RetentionRules(daily=7, weekly=4, monthly=3)))
    r = retention.check_target(POLICY, t, period(60, 90))
    assert r.verdict is Verdict.MET
    assert r.value == {
        "daily": {"required": 7, "held": 7, "missing": []},
        "weekly": {"required": 4, "held": 4, "missing": []},
        "monthly": {"required": 3, "held": 3, "missing": []},
    }
    assert r.threshold == {"daily": 7, "weekly": 4, "monthly": 3}


def test_client_keeping_three_days_is_violated_though_seven_distinct_days_remain() -> None:
    t = target(snapshots=history(RetentionRules(daily=3, weekly=4, monthly=3)))
    present = {f"{s.time:%m-%d}" for s in t.snapshots if s.gone_at is None}
    assert len(present) >= 7  # weekly and monthly snapshots fill daily buckets: counting days would say met
    r = retention.check_target(POLICY, t, period(60, 90))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["daily"] == {
        "required": 7,
        "held": 3,
        "missing": ["2024-07-26", "2024-07-25", "2024-07-24", "2024-07-23"],
    }
    assert r.value["weekly"]["missing"] == []
    assert "keep-daily 7" in r.reason


def test_young_repository_is_not_yet_applicable() -> None:
    t = target(snapshots=[snap(f"d{k}", day(k) + HOUR) for k in range(3)])
    r = retention.check_target(POLICY, t, Period(day(0), day(3)))
    assert r.verdict is Verdict.UNKNOWN
    assert r.value["daily"] == {"required": 7, "held": 3, "missing": []}
    assert "not yet applicable" in r.reason


def test_young_repository_missing_a_day_it_should_hold_is_violated() -> None:
    snaps = [snap("d0", day(0) + HOUR), snap("d1", day(1) + HOUR, gone=day(2) + 2 * HOUR), snap("d2", day(2) + HOUR)]
    r = retention.check_target(POLICY, target(snapshots=snaps), Period(day(0), day(3)))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["daily"]["missing"] == ["2024-05-02"]


def test_old_enough_but_too_few_days_with_a_snapshot_is_violated() -> None:
    snaps = [snap(f"w{k}", day(7 * k) + HOUR) for k in range(5)]  # weekly backups, keep-daily 7 asked
    r = retention.check_target(POLICY, target(snapshots=snaps), Period(day(0), day(30)))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["daily"] == {"required": 7, "held": 5, "missing": []}
    assert r.value["weekly"]["held"] == 4
    assert "only 5 days" in r.reason


def test_everything_gone_is_violated_and_nothing_listed_unknown() -> None:
    gone = [snap(f"d{k}", day(k), gone=day(10)) for k in range(5)]
    assert retention.check_target(POLICY, target(snapshots=gone), period(0, 20)).verdict is Verdict.VIOLATED
    assert retention.check_target(POLICY, target(), period(0, 20)).verdict is Verdict.UNKNOWN


def test_no_depth_asked_is_met() -> None:
    none = policy(retention={"daily": 0, "weekly": 0, "monthly": 0})
    assert retention.check_target(none, target(), period(0, 20)).verdict is Verdict.MET
