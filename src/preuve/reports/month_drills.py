"""Drills as the ledger recorded them, and the incidents they open and close.

An incident is a failure class detected at a failed (``failed``: the backup is wrong) or erroring (``error``: Preuve
could not verify it) drill, resolved at the next passing drill of the same target and the same family: a restore
drill (sample or full) resolves restore failures, an integrity run resolves integrity failures (a passing sample
restore does not prove that damaged packs were repaired). Failures in between belong to the same incident.
Interrupted drills neither open nor close one. Technicians' notes are attached through the drill they name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from preuve.policies.facts import DrillFact
from preuve.reports.month_ledger import Entry
from preuve.reports.values import iso_z, when_us

RESTORE_KINDS = frozenset({"sample", "full"})
FAILED = frozenset({"failed", "error"})
MESSAGE_CHARS = 1000  # a drill's message can quote restic at length; the attestation keeps its start


@dataclass(frozen=True)
class Drill:
    id: int
    seq: int
    target: str
    kind: str  # sample | full | integrity
    status: str  # passed | failed | error | interrupted
    failure_class: str | None
    message: str
    requested_at: datetime
    finished_at: datetime
    snapshot_id: str | None
    snapshot_time: datetime | None
    files_checked: int | None
    bytes_restored: int | None
    restore_ms: int | None
    duration_ms: int | None
    estimated_full_restore_ms: int | None
    subset: str | None

    @property
    def family(self) -> str:
        return "restore" if self.kind in RESTORE_KINDS else "integrity"

    def fact(self) -> DrillFact:
        """As the policy rules see a drill (for the integrity rotation's arithmetic)."""
        return DrillFact(
            id=self.id,
            kind=self.kind,
            status=self.status,
            failure_class=self.failure_class,
            requested_at=self.requested_at,
            finished_at=self.finished_at,
            subset=self.subset,
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def drill_of(entry: Entry) -> Drill | None:
    """The drill an entry records, or None if it is not a drill entry the attestation can use."""
    p = entry.payload
    drill_id, target = _int(p.get("drill")), _str(p.get("target"))
    finished = when_us(p.get("finished_at")) or entry.recorded_at
    if entry.kind not in ("drill", "integrity") or drill_id is None or target is None:
        return None
    return Drill(
        id=drill_id,
        seq=entry.seq,
        target=target,
        kind=_str(p.get("drill_kind")) or ("integrity" if entry.kind == "integrity" else "sample"),
        status=_str(p.get("status")) or "error",
        failure_class=_str(p.get("failure_class")),
        message=_str(p.get("message")) or "",
        requested_at=when_us(p.get("requested_at")) or finished,
        finished_at=finished,
        snapshot_id=_str(p.get("snapshot_id")),
        snapshot_time=when_us(p.get("snapshot_time")),
        files_checked=_int(p.get("files_checked")),
        bytes_restored=_int(p.get("bytes_restored")),
        restore_ms=_int(p.get("restore_ms")),
        duration_ms=_int(p.get("duration_ms")),
        estimated_full_restore_ms=_int(p.get("estimated_full_restore_ms")),
        subset=_str(p.get("subset")),
    )


def drills_of(entries: Iterable[Entry]) -> list[Drill]:
    found = [d for d in (drill_of(e) for e in entries) if d is not None]
    return sorted(found, key=lambda d: (d.finished_at, d.seq))


@dataclass
class Incident:
    target: str
    family: str
    first: Drill
    failures: list[Drill] = field(default_factory=list)
    resolved_by: Drill | None = None

    @property
    def detected_at(self) -> datetime:
        return self.first.finished_at

    @property
    def resolved_at(self) -> datetime | None:
        return self.resolved_by.finished_at if self.resolved_by else None

    def open_at(self, moment: datetime) -> bool:
        return self.detected_at < moment and (self.resolved_at is None or self.resolved_at >= moment)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.detected_at < end and (self.resolved_at is None or self.resolved_at >= start)

    def as_json(self, notes: Sequence[Entry]) -> dict[str, Any]:
        ids = {d.id for d in self.failures}
        attached = [
            {"text": n.payload.get("text"), "by": n.payload.get("by"), "at": iso_z(when_us(n.payload.get("at")))}
            for n in notes
            if n.payload.get("drill") in ids
        ]
        return {
            "target": self.target,
            "class": self.first.failure_class,
            "drill": self.first.id,
            "detected_at": iso_z(self.detected_at),
            "resolved_at": iso_z(self.resolved_at),
            "resolved_by_drill": self.resolved_by.id if self.resolved_by else None,
            "message": self.first.message[:MESSAGE_CHARS],
            "notes": attached,
            "status": self.first.status,
            "drill_kind": self.first.kind,
            "failed_drills": [d.id for d in self.failures],
        }


def incidents(drills: Iterable[Drill]) -> list[Incident]:
    """Every incident in these drills (of any targets), in order of detection."""
    found: list[Incident] = []
    open_: dict[tuple[str, str], Incident] = {}
    for drill in sorted(drills, key=lambda d: (d.finished_at, d.seq)):
        key = (drill.target, drill.family)
        current = open_.get(key)
        if drill.status in FAILED:
            if current is None:
                current = Incident(drill.target, drill.family, drill)
                open_[key] = current
                found.append(current)
            current.failures.append(drill)
        elif drill.status == "passed" and current is not None:
            current.resolved_by = drill
            del open_[key]
    return sorted(found, key=lambda i: (i.detected_at, i.first.seq))
