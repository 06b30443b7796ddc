"""What the console reads from the store beyond the overview: targets of a client, a target's snapshot times,
acknowledgements of a drill. Plain dataclasses out, as :mod:`preuve.store.records` does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from preuve.store.db import Store
from preuve.store.models import metadata

_TARGET = metadata.tables["target"]
_SNAPSHOT = metadata.tables["snapshotseen"]
_LEDGER = metadata.tables["ledgerentry"]
_CLIENT = metadata.tables["client"]


@dataclass(frozen=True)
class TargetInfo:
    id: int
    ref: str
    client: str
    name: str
    kind: str
    location: str
    media: str
    repository: str  # display form: never credentials
    source: str | None


@dataclass(frozen=True)
class Acknowledgement:
    seq: int
    text: str
    by: str
    at: datetime
    entry_hash: str


def client_name(store: Store, client_id: str) -> str | None:
    with store.connection() as connection:
        row = connection.execute(select(_CLIENT.c.name).where(_CLIENT.c.id == client_id)).one_or_none()
    return str(row.name) if row else None


def targets_of(store: Store, client_id: str) -> list[TargetInfo]:
    """The client's watched targets (removed ones keep their history but are not listed)."""
    t = _TARGET.c
    with store.connection() as connection:
        rows = connection.execute(
            select(t.id, t.ref, t.client_id, t.name, t.kind, t.location, t.media, t.repository, t.source)
            .where(t.client_id == client_id, t.removed_at.is_(None))
            .order_by(t.name)
        ).all()
    return [TargetInfo(*row) for row in rows]


def target_info(store: Store, ref: str) -> TargetInfo | None:
    t = _TARGET.c
    with store.connection() as connection:
        row = connection.execute(
            select(t.id, t.ref, t.client_id, t.name, t.kind, t.location, t.media, t.repository, t.source).where(
                t.ref == ref, t.removed_at.is_(None)
            )
        ).one_or_none()
    return TargetInfo(*row) if row else None


def snapshot_times(store: Store, target_id: int, since: datetime) -> list[datetime]:
    """Times of the target's snapshots taken since ``since``, plus the last one before it (the age at ``since``
    depends on it), oldest first. Snapshots later forgotten count: they existed when they were the newest."""
    s = _SNAPSHOT.c
    with store.connection() as connection:
        before = connection.execute(
            select(s.time).where(s.target_id == target_id, s.time < since).order_by(s.time.desc()).limit(1)
        ).all()
        after = connection.execute(
            select(s.time).where(s.target_id == target_id, s.time >= since).order_by(s.time)
        ).all()
    return [row.time for row in before] + [row.time for row in after]


def acknowledgements(store: Store, client_id: str, drill_id: int) -> list[Acknowledgement]:
    """Notes recorded in the client's ledger about this drill, oldest first."""
    e = _LEDGER.c
    with store.connection() as connection:
        rows = connection.execute(
            select(e.seq, e.payload, e.recorded_at, e.entry_hash)
            .where(e.client_id == client_id, e.kind == "note", e.ref_table == "drillrun", e.ref_id == drill_id)
            .order_by(e.seq)
        ).all()
    found = []
    for row in rows:
        try:
            payload = json.loads(row.payload)
        except ValueError:
            continue
        if isinstance(payload, dict):
            found.append(
                Acknowledgement(
                    row.seq, str(payload.get("text", "")), str(payload.get("by", "")), row.recorded_at, row.entry_hash
                )
            )
    return found


def age_series(times: list[datetime], start: datetime, end: datetime) -> list[tuple[datetime, timedelta | None]]:
    """The newest snapshot's age over [start, end] as a saw-tooth: it grows with time and drops to zero at each
    new snapshot. ``None`` where no snapshot existed yet."""
    points: list[tuple[datetime, timedelta | None]] = []
    newest: datetime | None = None
    for moment in times:
        if moment <= start:
            newest = moment
            continue
        if moment > end:
            break
        if newest is None:
            points += [(start, None), (moment, None)]
        else:
            points += [(start, start - newest)] if not points else []
            points.append((moment, moment - newest))
        points.append((moment, timedelta(0)))
        newest = moment
    if not points:
        points.append((start, start - newest if newest else None))
    points.append((end, end - newest if newest else None))
    return points
