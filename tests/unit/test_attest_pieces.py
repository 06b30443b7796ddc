"""The attestation's arithmetic on hand-made timelines: snapshot age and RPO compliance, incidents, headline, codes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from preuve.policies.facts import RuleResult, Verdict
from preuve.reports.month_drills import Drill, incidents
from preuve.reports.month_ledger import Entry
from preuve.reports.month_policy import plan, recommendations, restorable
from preuve.reports.snapshot_age import Observation, steps, summarize
from preuve.reports.values import iso_z, jsonable

T0 = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)


def probe(at: datetime, newest: datetime | None) -> Observation:
    return Observation(at, newest, True)


# --------------------------------------------------------------------------------------------- snapshot age / RPO


def test_rpo_compliance_on_a_known_timeline() -> None:
    """Ten days, RPO 24 h, a snapshot every day at 01:00 except day 4, probes every hour at :30.

    The snapshot of day 3 (01:00) stays within the RPO until day 4 01:00; the next one is taken on day 5 at 01:00:
    24 h over the RPO, so 240 h - 24 h = 216 h within it: 90 %. The longest gap between snapshots is 48 h."""
    start, end = T0, T0 + 10 * DAY
    snapshots = [T0 - DAY + H] + [T0 + d * DAY + H for d in range(10) if d != 4]
    seen = []
    moment = T0 - DAY + H + 30 * timedelta(minutes=1)
    while moment < end:
        newest = max(s for s in snapshots if s <= moment)
        seen.append(probe(moment, newest))
        moment += H
    summary = summarize(seen, start, end, timedelta(hours=24))
    assert summary.compliance_pct == 90.0
    assert summary.observed_pct == 100.0
    assert summary.longest_gap_s == 48 * 3600
    # the newest snapshot (day 9, 01:00) is 23 h old at the end
    assert summary.newest_age_at_end_s == 23 * 3600
    assert len(summary.points) == 10 * 24 + 1
    assert summary.points[0] == ["2026-10-01T00:00:00Z", 23 * 3600]
    # day 5 at 00:00: the day-3 snapshot is 47 h old; at 02:00 the day-5 one (taken 01:00, seen at 01:30) is 1 h old
    assert summary.points[5 * 24] == ["2026-10-06T00:00:00Z", 47 * 3600]
    assert summary.points[5 * 24 + 2] == ["2026-10-06T02:00:00Z", 3600]


def test_a_snapshot_counts_from_its_own_time_not_from_when_it_was_seen() -> None:
    # seen at 10:00 only, taken at 07:00: between the 06:00 probe and 10:00 it already existed from 07:00
    old = T0 - 30 * H
    seen = [probe(T0 + 6 * H, old), probe(T0 + 10 * H, T0 + 7 * H)]
    assert steps(seen) == [(T0 + 6 * H, old), (T0 + 7 * H, T0 + 7 * H)]
    summary = summarize(seen, T0, T0 + 12 * H, timedelta(hours=24))
    # nothing known before 06:00; 06:00-07:00 the old snapshot is 36-37 h old; from 07:00 within the RPO
    assert summary.observed_pct == 50.0
    assert summary.compliance_pct == pytest.approx(100 * 5 / 6, abs=0.01)
    assert summary.points[5][1] is None and summary.points[6][1] == 36 * 3600


def test_a_drill_never_makes_the_newest_snapshot_older_but_a_probe_may() -> None:
    newest = T0 + H
    seen = [
        probe(T0 + 2 * H, newest),
        Observation(T0 + 3 * H, T0 - DAY, False),  # a drill of an older snapshot
        probe(T0 + 4 * H, T0 - DAY),  # the newest snapshot was deleted
    ]
    assert [base for _, base in steps(seen)] == [newest, T0 - DAY]


def test_no_observation_means_unknown_never_compliant() -> None:
    summary = summarize([], T0, T0 + 31 * DAY, timedelta(hours=24))
    assert summary.compliance_pct is None
    assert summary.longest_gap_s is None
    assert summary.newest_age_at_end_s is None
    assert summary.points == []
    assert summary.observed_pct == 0.0


def test_an_empty_repository_is_observed_and_out_of_the_rpo() -> None:
    summary = summarize([probe(T0, None), probe(T0 + DAY, None)], T0, T0 + 2 * DAY, timedelta(hours=24))
    assert summary.compliance_pct == 0.0
    assert summary.newest_age_at_end_s is None
    assert summary.longest_gap_s == 2 * 86400  # no snapshot at all: the whole period is one gap
    assert all(age is None for _, age in summary.points)


def test_points_are_bounded_to_one_an_hour_and_json() -> None:
    seen = [probe(T0 + i * timedelta(minutes=5), T0 + i * timedelta(minutes=5)) for i in range(31 * 24 * 12)]
    summary = summarize(seen, T0, T0 + 31 * DAY, timedelta(hours=4))
    assert len(summary.points) == 31 * 24 + 1
    json.dumps(summary.points, allow_nan=False)


def test_partial_period_ends_with_a_point_at_its_end() -> None:
    end = T0 + 5 * H + 17 * timedelta(minutes=1)
    summary = summarize([probe(T0, T0)], T0, end, timedelta(hours=24))
    assert summary.points[-1][0] == iso_z(end)
    assert len(summary.points) == 7


def test_values_are_plain_json() -> None:
    assert jsonable({"a": math.nan, "b": (1, 2.5), "c": T0, "d": H}) == {
        "a": None,
        "b": [1, 2.5],
        "c": "2026-10-01T00:00:00Z",
        "d": 3600,
    }
    assert iso_z(datetime(2026, 10, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == "2026-10-31T23:59:59Z"


# ---------------------------------------------------------------------------------------------------- incidents


def drill(drill_id: int, at: datetime, status: str, kind: str = "sample", target: str = "a/nas") -> Drill:
    return Drill(
        id=drill_id,
        seq=drill_id,
        target=target,
        kind=kind,
        status=status,
        failure_class=None if status == "passed" else "corrupt-data",
        message="" if status == "passed" else f"drill {drill_id} failed",
        requested_at=at,
        finished_at=at,
        snapshot_id=None,
        snapshot_time=None,
        files_checked=None,
        bytes_restored=None,
        restore_ms=None,
        duration_ms=None,
        estimated_full_restore_ms=None,
        subset=None,
    )


def test_incidents_group_failures_until_a_pass_of_the_same_family_and_target() -> None:
    found = incidents(
        [
            drill(1, T0, "passed"),
            drill(2, T0 + DAY, "failed"),
            drill(3, T0 + 2 * DAY, "error"),
            drill(4, T0 + 2 * DAY + H, "interrupted"),
            drill(5, T0 + 2 * DAY + 2 * H, "passed", kind="integrity"),  # does not resolve a restore failure
            drill(6, T0 + 2 * DAY + 3 * H, "failed", kind="integrity"),
            drill(7, T0 + 2 * DAY + 4 * H, "passed", target="a/usb"),  # another target
            drill(8, T0 + 3 * DAY, "passed", kind="full"),
        ]
    )
    restore, integrity = found
    assert [d.id for d in restore.failures] == [2, 3]
    assert restore.resolved_by is not None and restore.resolved_by.id == 8
    assert integrity.family == "integrity" and integrity.resolved_by is None
    assert integrity.open_at(T0 + 10 * DAY)
    note = Entry(
        9, "note", T0 + DAY, {"text": "disque remplacé", "by": "j.martin", "at": 1_790_000_000_000_000, "drill": 3}
    )
    shown = restore.as_json([note])
    assert shown["drill"] == 2 and shown["resolved_by_drill"] == 8 and shown["failed_drills"] == [2, 3]
    assert shown["notes"] == [{"text": "disque remplacé", "by": "j.martin", "at": "2026-09-21T14:13:20Z"}]


def test_an_incident_overlaps_a_period_while_open_in_it() -> None:
    (incident,) = incidents([drill(1, T0 - 5 * DAY, "failed"), drill(2, T0 + DAY, "passed")])
    assert incident.overlaps(T0, T0 + 31 * DAY)
    assert not incident.overlaps(T0 + 2 * DAY, T0 + 31 * DAY)
    assert not incident.overlaps(T0 - 30 * DAY, T0 - 5 * DAY)  # detected at the very end: not before it


# ------------------------------------------------------------------------------------------ headline and codes


def target(ref: str, *, tested: bool, entries: int = 10, enabled: bool = True, ever: bool = True) -> dict[str, object]:
    return {
        "ref": ref,
        "enabled": enabled,
        "tested": tested,
        "entries_in_period": entries,
        "last_passed_drill": {"drill": 1} if ever or tested else None,
        "integrity": {"failed_runs": []},
    }


def test_restorable_headline() -> None:
    a, b = target("c/a", tested=True), target("c/b", tested=True)
    assert restorable([a, b], set()) == "yes"
    assert restorable([a, b], {"c/b"}) == "partly"  # a failure still open at the end
    assert restorable([a, target("c/b", tested=False)], set()) == "partly"
    assert restorable([a, target("c/b", tested=False, enabled=False)], set()) == "yes"
    assert restorable([target("c/a", tested=False), target("c/b", tested=False)], set()) == "no"
    assert restorable([target("c/a", tested=False, entries=0)], set()) == "unknown"
    assert restorable([], set()) == "unknown"


def test_plan_headline() -> None:
    assert plan([Verdict.MET, Verdict.MET]) == "met"
    assert plan([Verdict.MET, Verdict.VIOLATED]) == "partly"
    assert plan([Verdict.MET, Verdict.UNKNOWN]) == "partly"
    assert plan([Verdict.VIOLATED, Verdict.UNKNOWN]) == "not-met"
    assert plan([Verdict.UNKNOWN]) == "unknown"
    assert plan([]) == "unknown"


def rule(name: str, ref: str | None, verdict: Verdict) -> RuleResult:
    return RuleResult(name, ref, verdict, None, None, "because")


def test_recommendation_codes() -> None:
    targets = [
        target("c/nas", tested=True),
        target("c/usb", tested=False),
        target("c/cloud", tested=False, entries=0, ever=False),
        target("c/old", tested=False, enabled=False, ever=False),
    ]
    rules = {
        (r.rule, r.target): r
        for r in [
            rule("rpo", "c/nas", Verdict.VIOLATED),
            rule("rto", "c/nas", Verdict.UNKNOWN),
            rule("drill-frequency", "c/nas", Verdict.VIOLATED),
            rule("drill-frequency", "c/usb", Verdict.VIOLATED),  # said as not-tested-this-month already
            rule("immutability", "c/cloud", Verdict.VIOLATED),
            rule("copies", None, Verdict.MET),
            rule("secrets", "c/old", Verdict.VIOLATED),  # a disabled target: nothing to recommend
            rule("future-rule", "c/nas", Verdict.VIOLATED),
        ]
    }
    found = {(r["code"], r["target"], r["rule"]) for r in recommendations(targets, rules, {"c/nas"})}
    assert found == {
        ("rpo-violated", "c/nas", "rpo"),
        ("rto-unconfirmed", "c/nas", "rto"),
        ("unresolved-failure", "c/nas", "drill-frequency"),
        ("rule-violated", "c/nas", "future-rule"),
        ("not-tested-this-month", "c/usb", "drill-frequency"),
        ("never-tested", "c/cloud", "drill-frequency"),
        ("unknown-data", "c/cloud", None),
        ("immutability-missing", "c/cloud", "immutability"),
    }
