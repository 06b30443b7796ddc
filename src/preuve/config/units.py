"""Human-readable durations (``24h``, ``7d``, ``90s``), sizes (``2GiB``, ``500MB``) and percentages (``20%``)."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_DURATION = re.compile(rf"^\s*{_NUMBER}\s*(ms|s|m|min|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(rf"^\s*{_NUMBER}\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4,
    "p": 1000**5, "pb": 1000**5, "pib": 1024**5, "pi": 1024**5,
}  # fmt: skip
_PERCENT = re.compile(rf"^\s*{_NUMBER}\s*%\s*$")
# timedelta holds up to 999999999 days; anything near that is a typo, not a duration
_MAX_SECONDS = float(timedelta.max.total_seconds())
_MAX_BYTES = 1024**6  # an exbibyte: more is a typo, not a size


def _shown(text: object) -> str:
    """``repr`` of a value for a message, cut short: a 400-digit typo need not be quoted in full."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:30] + "..." + shown[-6:]


def _duration_error(text: object) -> ValueError:
    return ValueError(f"{_shown(text)} is not a duration; write it like 90s, 15m, 24h or 7d")


def _size_error(text: object) -> ValueError:
    return ValueError(f"{_shown(text)} is not a size; write it like 500MB or 2GiB")


def parse_duration(text: str | int | float) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w``; a bare number is seconds.

    Raises ``ValueError`` (never anything else) for text that is not a positive, representable duration.
    """
    if isinstance(text, bool):
        raise _duration_error(text)
    if isinstance(text, int | float):
        seconds = float(text) if not isinstance(text, int) or abs(text) < 10**20 else math.inf
    elif isinstance(text, str):
        match = _DURATION.match(text)
        if not match:
            raise _duration_error(text)
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise _duration_error(text)
    if math.isnan(seconds):
        raise _duration_error(text)
    if seconds <= 0:
        raise ValueError(f"{_shown(text)} must be longer than zero")
    if seconds >= _MAX_SECONDS:
        raise ValueError(f"{_shown(text)} is too long to be a duration")
    result = timedelta(seconds=seconds)
    if not result:
        raise ValueError(f"{_shown(text)} must be at least a microsecond")
    return result


def parse_size(text: str | int) -> int:
    """``2GiB``, ``500MB``, ``64KiB``, a bare number of bytes.

    Raises ``ValueError`` (never anything else) for text that is not a size of at least one byte.
    """
    if isinstance(text, bool):
        raise _size_error(text)
    if isinstance(text, int):
        value = float(text) if abs(text) <= _MAX_BYTES else math.inf
    elif isinstance(text, str):
        match = _SIZE.match(text)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _SIZE_UNITS:
            raise _size_error(text)
        value = float(match.group(1)) * _SIZE_UNITS[unit]
    else:
        raise _size_error(text)
    if value <= 0:
        raise ValueError(f"{_shown(text)} must be larger than zero")
    if value > _MAX_BYTES:
        raise ValueError(f"{_shown(text)} is too large to be a size")
    if value < 1:
        raise ValueError(f"{_shown(text)} is less than one byte")
    return int(value)


def parse_percent(text: str | int | float) -> float:
    """``20%`` -> 0.2. Between 0% and 100%."""
    if isinstance(text, bool):
        raise ValueError(f"{_shown(text)} is not a percentage; write it like 20%")
    if isinstance(text, int | float):
        raise ValueError(f"{_shown(text)} is not a percentage; write it with a % sign, like 20%")
    if not isinstance(text, str):
        raise ValueError(f"{_shown(text)} is not a percentage; write it like 20%")
    match = _PERCENT.match(text)
    if not match:
        raise ValueError(f"{_shown(text)} is not a percentage; write it like 20%")
    value = float(match.group(1))
    if value > 100:
        raise ValueError(f"{_shown(text)} is more than 100%")
    return value / 100


def format_bytes(count: int | float) -> str:
    """``1536`` -> ``1.5 KiB``: bytes up to 1023, then one decimal in the largest unit that keeps it under 1024."""
    value = float(count)
    if not math.isfinite(value):
        return f"{value} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        shown = round(abs(value)) if unit == "B" else round(abs(value), 1)
        if shown < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """``12.3 s`` under a minute, ``4 min 05 s`` under an hour, else ``2 h 03 min``."""
    if not math.isfinite(seconds):
        return f"{seconds} s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"
