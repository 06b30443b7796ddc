"""Anomalies: size or file count dropping, or too many files changed, from one snapshot to the next."""

from __future__ import annotations

from preuve.policies.facts import SnapshotFact, Verdict
from preuve.policies.rules import anomalies

from .factories import day, period, policy, snap, target

P = policy(anomalies={"max_size_drop": "30%", "max_files_drop": "30%", "max_changed": "50%"})
GB = 10**9


def pair(size: int | None = 100 * GB, files: int | None = 1000, changed: int | None = 50) -> list[SnapshotFact]:
    return [
        snap("prev", day(1), size=100 * GB, files=1000, changed=10),
        snap("new", day(2), size=size, files=files, changed=changed),
    ]


def test_steady_snapshots_are_met() -> None:
    r = anomalies.check_target(P, target(snapshots=pair(size=90 * GB, files=1100)), period(0, 3))
    assert r.verdict is Verdict.MET
    assert r.value == {"size_drop": 0.1, "files_drop": 0.0, "changed": 0.045455, "snapshot": "new", "previous": "prev"}
    assert r.evidence == {"snapshots": ["new", "prev"]}


def test_size_drop_over_the_limit_is_violated() -> None:
    r = anomalies.check_target(P, target(snapshots=pair(size=60 * GB)), period(0, 3))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["size_drop"] == 0.4
    assert "size dropped by 40.0 %" in r.reason


def test_exactly_at_the_limit_is_met() -> None:
    r = anomalies.check_target(P, target(snapshots=pair(files=700)), period(0, 3))
    assert r.value["files_drop"] == 0.3
    assert r.verdict is Verdict.MET


def test_mass_change_is_violated() -> None:
    r = anomalies.check_target(P, target(snapshots=pair(changed=900)), period(0, 3))
    assert r.verdict is Verdict.VIOLATED
    assert r.value["changed"] == 0.9


def test_missing_stats_are_unknown_unless_something_is_already_wrong() -> None:
    assert anomalies.check_target(P, target(snapshots=pair(changed=None)), period(0, 3)).verdict is Verdict.UNKNOWN
    both = pair(size=10 * GB, changed=None)
    assert anomalies.check_target(P, target(snapshots=both), period(0, 3)).verdict is Verdict.VIOLATED


def test_one_snapshot_or_none_is_unknown() -> None:
    assert anomalies.check_target(P, target(snapshots=[snap("a", day(1))]), period(0, 3)).verdict is Verdict.UNKNOWN
    assert anomalies.check_target(P, target(), period(0, 3)).verdict is Verdict.UNKNOWN


def test_compared_with_the_previous_snapshot_of_the_same_source_even_if_forgotten() -> None:
    snaps = [
        snap("prev", day(1), size=100 * GB, files=1000, gone=day(2.5)),
        snap("laptop", day(1.5), host="laptop", size=1 * GB, files=10),
        snap("new", day(2), size=50 * GB, files=1000, changed=0),
    ]
    r = anomalies.check_target(P, target(snapshots=snaps), period(0, 3))
    assert r.value["previous"] == "prev"
    assert r.value["size_drop"] == 0.5
    assert r.verdict is Verdict.VIOLATED
