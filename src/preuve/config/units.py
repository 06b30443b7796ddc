"""Human-readable durations (``24h``, ``7d``, ``90s``), sizes (``2GiB``, ``500MB``) and percentages (``20%``)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4,
    "p": 1000**5, "pb": 1000**5, "pib": 1024**5, "pi": 1024**5,
}  # fmt: skip
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_duration(text: str | int | float) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w``; a bare number is seconds."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 15m, 24h or 7d")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a duration; write it like 90s, 15m, 24h or 7d")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def parse_size(text: str | int) -> int:
    """``2GiB``, ``500MB``, ``64KiB``, a bare number of bytes."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size; write it like 500MB or 2GiB")
    if isinstance(text, int):
        value = float(text)
    else:
        match = _SIZE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a size; write it like 500MB or 2GiB")
        value = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"{text!r} must be larger than zero")
    return int(value)


def parse_percent(text: str | int | float) -> float:
    """``20%`` -> 0.2. Between 0% and 100%."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a percentage; write it like 20%")
    if isinstance(text, int | float):
        raise ValueError(f"{text!r} is not a percentage; write it with a % sign, like 20%")
    match = _PERCENT.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a percentage; write it like 20%")
    value = float(match.group(1))
    if value > 100:
        raise ValueError(f"{text!r} is more than 100%")
    return value / 100


def format_bytes(count: int | float) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"
