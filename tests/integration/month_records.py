"""A month of results recorded through Preuve's own paths, for attestation tests that need real store contents.

Results go through create_drill/finish_drill, record_probe and add_note, each appended to the ledger as in
production. The ledger dates entries with the current time; to record a past month, the clock those paths read is
set (:class:`Clock`, installed by :func:`install_clock`) before each recording, in the order a real month would
record them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from preuve.drills.result import DrillKind, DrillResult, DrillStatus, Finding
from preuve.errors import FailureClass
from preuve.restic.parse import Snapshot
from preuve.store import ledger, records
from preuve.store.db import Store
from preuve.targets.facts import ProbeResult

OCT = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)
NOTE = "Disque du NAS remplacé, sauvegarde complète relancée."


class Clock:
    """The time the recording paths read (ledger entries' recorded_at, drills' requested_at)."""

    def __init__(self) -> None:
        self.at = OCT


def install_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    current = Clock()

    class _Now(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            return current.at if tz is not None else current.at.replace(tzinfo=None)

    monkeypatch.setattr(ledger, "datetime", _Now)
    monkeypatch.setattr(records, "_now", lambda: current.at)
    return current


def snapshot(ref: str, taken: datetime) -> Snapshot:
    digest = hashlib.sha256(f"{ref}@{taken.isoformat()}".encode()).hexdigest()
    return Snapshot(id=digest, short_id=digest[:8], time=taken, paths=("/data",), hostname="srv")


def run_drill(
    store: Store,
    clock: Clock,
    ref: str,
    finished: datetime,
    status: DrillStatus = DrillStatus.PASSED,
    kind: DrillKind = DrillKind.SAMPLE,
    *,
    taken: datetime | None = None,
    failure: FailureClass | None = None,
    subset: str | None = None,
) -> int:
    clock.at = finished - timedelta(minutes=10)
    drill_id = records.create_drill(store, ref, kind, "scheduler")
    clock.at = finished
    restore = kind is not DrillKind.INTEGRITY
    snap = snapshot(ref, taken) if taken and restore else None
    result = DrillResult(
        status=status,
        kind=kind,
        failure_class=failure,
        message="" if status is DrillStatus.PASSED else f"restic: {failure} on {ref}",
        snapshot_id=snap.id if snap else None,
        snapshot_time=snap.time if snap else None,
        files_in_snapshot=1000 if restore else 0,
        bytes_in_snapshot=10 * 2**30 if restore else 0,
        files_checked=(1000 if kind is DrillKind.FULL else 50) if restore else 0,
        bytes_restored=(10 * 2**30 if kind is DrillKind.FULL else 2**20) if restore else 0,
        restore_s=5000.0 if kind is DrillKind.FULL else 30.0,
        duration_s=5100.0 if kind is DrillKind.FULL else 40.0,
        estimated_full_restore_s=5400.0 if restore else None,
        restic_version="0.17.3",
        host="preuve-1",
        started_at=finished - timedelta(minutes=9),
        finished_at=finished,
        subset=subset,
        findings=[Finding("/data/compta.xlsx", failure, "hash mismatch")] if failure else [],
    )
    records.finish_drill(store, drill_id, result)
    return drill_id


def run_probe(
    store: Store, clock: Clock, ref: str, at: datetime, taken: list[datetime], facts: dict[str, Any] | None = None
) -> int:
    clock.at = at
    probe = ProbeResult(
        ok=True,
        started_at=at - timedelta(seconds=3),
        finished_at=at,
        reachable=True,
        credentials_ok=True,
        repository_opens=True,
        snapshots=[snapshot(ref, t) for t in taken],
        facts=facts or {},
        restic_version="0.17.3",
        host="preuve-1",
    )
    return records.record_probe(store, ref, probe)


@dataclass
class Month:
    failed: int  # the failed drill of day 7
    fixed: int  # the pass of day 8 that resolves it
    full: int  # the full restore of day 12
    last: int  # the last pass of the month
    taken: list[datetime]  # the nas snapshots


def month_end(start: datetime) -> datetime:
    return (start + 32 * DAY).replace(day=1)


def build_month(store: Store, clock: Clock, client: str = "acme", start: datetime = OCT, *, usb: bool = True) -> Month:
    """CLIENT/nas: a snapshot every night at 01:00 (none on the 15th), a probe at 02:00, a sample drill at 03:00
    that passes except on the 7th (corrupt data, a technician's note, fixed on the 8th), a full restore on the 12th,
    an integrity run reading all of the repository on the 20th. CLIENT/usb (with ``usb``): one pass 11 days before
    the month, nothing in it. Any other target: nothing ever."""
    if usb:
        run_drill(store, clock, f"{client}/usb", start - 11 * DAY, taken=start - 11 * DAY - 2 * H)
    nas = f"{client}/nas"
    taken = [start - DAY + H]
    run_probe(store, clock, nas, start - DAY + 2 * H, taken)
    ids: dict[str, int] = {}
    days = (month_end(start) - start).days
    for day in range(days):
        midnight = start + day * DAY
        if day != 14:
            taken.append(midnight + H)
        run_probe(store, clock, nas, midnight + 2 * H, taken)
        if day == 6:
            ids["failed"] = run_drill(
                store, clock, nas, midnight + 3 * H, DrillStatus.FAILED, taken=taken[-1],
                failure=FailureClass.CORRUPT_DATA,
            )  # fmt: skip
            clock.at = midnight + 9 * H
            ledger.add_note(store, client, NOTE, "j.martin", drill_id=ids["failed"])
            continue
        drill_id = run_drill(store, clock, nas, midnight + 3 * H, taken=taken[-1])
        if day == 7:
            ids["fixed"] = drill_id
        if day == 11:
            ids["full"] = run_drill(store, clock, nas, midnight + 6 * H, kind=DrillKind.FULL, taken=taken[-1])
        if day == 19:
            run_drill(store, clock, nas, midnight + 7 * H, kind=DrillKind.INTEGRITY, subset="1/1")
        ids["last"] = drill_id
    return Month(ids["failed"], ids["fixed"], ids["full"], ids["last"], taken)


def probe_month(store: Store, clock: Clock, ref: str, start: datetime = OCT) -> None:
    """Only probes: a snapshot every night at 01:00 seen at 02:00, and never a drill."""
    for day in range((month_end(start) - start).days):
        run_probe(store, clock, ref, start + day * DAY + 2 * H, [start + day * DAY + H])
