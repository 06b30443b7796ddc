"""How the console writes times, ages and sizes (also registered as Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from preuve.config.units import format_bytes, format_duration


def age(value: timedelta | float | None) -> str:
    """A rough age for people: "40 s", "25 min", "30 h", "12 days"."""
    if value is None:
        return "never"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value else "—"


def size(value: int | None) -> str:
    return format_bytes(value) if value is not None else "—"


def duration(value: float | None) -> str:
    return format_duration(value) if value is not None else "—"


def since(value: datetime | None) -> str:
    """How long ago ``value`` was, as a duration: a running command's time so far, when the page is drawn."""
    if value is None:
        return "—"
    return format_duration(max((datetime.now(UTC) - value).total_seconds(), 0.0))
