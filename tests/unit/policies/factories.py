"""Hand-built facts for the rule tests: a clock in days from T0, and builders with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from preuve.policies.facts import ClientFacts, DrillFact, ProbeFact, SnapshotFact, TargetFacts
from preuve.policies.model import Policy
from preuve.policies.period import Period

T0 = datetime(2024, 5, 1, tzinfo=UTC)  # a Wednesday
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def day(n: float) -> datetime:
    return T0 + n * DAY


def period(start: float, end: float) -> Period:
    return Period(day(start), day(end))


def snap(
    sid: str,
    time: datetime,
    *,
    seen: datetime | None = None,
    last: datetime | None = None,
    gone: datetime | None = None,
    host: str = "srv",
    paths: tuple[str, ...] = ("/data",),
    size: int | None = None,
    files: int | None = None,
    changed: int | None = None,
) -> SnapshotFact:
    first = seen or time
    return SnapshotFact(
        id=sid,
        time=time,
        first_seen_at=first,
        last_seen_at=last or first,
        gone_at=gone,
        hostname=host,
        paths=paths,
        size_bytes=size,
        file_count=files,
        changed_files=changed,
    )


_ids = iter(range(1, 1_000_000))


def drill(kind: str, status: str, finished: datetime | None, *, did: int | None = None, **kw: Any) -> DrillFact:
    requested = kw.pop("requested_at", None) or (finished - HOUR if finished else T0)
    return DrillFact(
        id=did if did is not None else next(_ids),
        kind=kind,
        status=status,
        failure_class=kw.pop("failure_class", None),
        requested_at=requested,
        finished_at=finished,
        **kw,
    )


def probe(at: datetime, *, pid: int | None = None, ok: bool = True, facts: dict[str, Any] | None = None) -> ProbeFact:
    return ProbeFact(id=pid if pid is not None else next(_ids), at=at, ok=ok, failure_class=None, facts=facts or {})


def target(
    name: str = "nas",
    *,
    kind: str = "local",
    location: str = "onsite",
    media: str = "disk",
    snapshots: tuple[SnapshotFact, ...] | list[SnapshotFact] = (),
    drills: tuple[DrillFact, ...] | list[DrillFact] = (),
    probes: tuple[ProbeFact, ...] | list[ProbeFact] = (),
    password_file: Path | None = None,
    canaries: tuple[str, ...] = (),
    append_only: bool = False,
) -> TargetFacts:
    return TargetFacts(
        ref=f"acme/{name}",
        name=name,
        kind=kind,
        location=location,
        media=media,
        source=None,
        password_file=password_file,
        canaries=canaries,
        append_only=append_only,
        snapshots=tuple(sorted(snapshots, key=lambda s: s.time)),
        drills=tuple(drills),
        probes=tuple(sorted(probes, key=lambda p: p.at)),
    )


def client(*targets: TargetFacts) -> ClientFacts:
    return ClientFacts(client_id="acme", name="Acme SARL", targets=tuple(targets))


def policy(**fields: Any) -> Policy:
    return Policy.model_validate(fields)


def s3_facts(
    *, lock: bool | None = True, days: int | None = 30, mode: str = "COMPLIANCE", versioning: str = "Enabled"
) -> dict[str, Any]:
    s3: dict[str, Any] = {"bucket": "b", "bucket_exists": True, "versioning": versioning, "object_lock": lock}
    s3["default_retention"] = {"mode": mode, "days": days} if days is not None else None
    return {"s3": s3}
