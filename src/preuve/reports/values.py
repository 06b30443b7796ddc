"""How an attestation writes values: JSON only, times as ISO-8601 UTC with Z, durations in whole seconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from preuve.store.ledger import from_micros


def iso_z(moment: datetime | None) -> str | None:
    """``2026-10-31T03:12:09Z``: UTC, to the second (a ledger time's microseconds are dropped, not rounded up)."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} refused")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when_us(value: object) -> datetime | None:
    """A ledger time (integer microseconds since the epoch), or None for anything else."""
    return from_micros(value) if isinstance(value, int) and not isinstance(value, bool) else None


def seconds(delta: timedelta) -> int:
    return round(delta.total_seconds())


def ms_to_s(value: object) -> int | None:
    """A ledger duration (integer milliseconds) in whole seconds; None when not measured."""
    if isinstance(value, int) and not isinstance(value, bool):
        return round(value / 1000)
    return None


def pct(share: float | None) -> float | None:
    """A share 0..1 as a percentage with two decimals; None stays None (and so would NaN: JSON has none)."""
    if share is None or not math.isfinite(share):
        return None
    return round(share * 100, 2)


def count(value: object) -> int:
    """An integer measurement, 0 when absent (used only for sums of what was verified, never for thresholds)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def jsonable(value: Any) -> Any:
    """A rule's measured value as plain JSON: tuples as lists, times as ISO strings, NaN and infinities as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, timedelta):
        return seconds(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
