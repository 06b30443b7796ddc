"""Numbers, dates, durations and sizes written the way a French or an English reader expects them.

Written out here rather than through Babel: two languages, a handful of formats, and no locale database to install
on the admin server. French follows the Imprimerie nationale habits a client's office reads every day: a no-break
space between thousands and before ``%``, a decimal comma, ``1er`` for the first day of a month, ``Gio`` for GiB.
``None`` is never formatted as a number: callers show "unknown" for it (see :mod:`preuve.reports.catalogue`).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Literal

Lang = Literal["fr", "en"]
LANGUAGES: tuple[Lang, ...] = ("fr", "en")

NBSP = "\u00a0"  # no-break space: "1 234,5" and "99,2 %" never wrap between the digits and their unit

_MONTHS: dict[Lang, tuple[str, ...]] = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}  # fmt: skip
_THOUSANDS: dict[Lang, str] = {"fr": NBSP, "en": ","}
_DECIMAL: dict[Lang, str] = {"fr": ",", "en": "."}
_BYTE_UNITS: dict[Lang, tuple[str, ...]] = {
    "fr": ("o", "Kio", "Mio", "Gio", "Tio", "Pio"),
    "en": ("B", "KiB", "MiB", "GiB", "TiB", "PiB"),
}
_DAY: dict[Lang, str] = {"fr": "j", "en": "d"}


def language(value: object) -> Lang:
    """``fr`` or ``en``; anything else is a mistake in the caller's data, said plainly."""
    if value == "fr":
        return "fr"
    if value == "en":
        return "en"
    raise ValueError(f"unsupported language {value!r}: attestations are written in fr or en")


def format_number(value: float, lang: Lang, decimals: int = 0) -> str:
    """``1234.5`` -> ``1 234,5`` (fr) or ``1,234.5`` (en), rounded to ``decimals`` places."""
    if isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    text = f"{abs(value):,.{decimals}f}"  # "1,234.5": Python's own grouping, then the locale's characters
    text = text.replace(",", "\x00").replace(".", _DECIMAL[lang]).replace("\x00", _THOUSANDS[lang])
    return ("-" if value < 0 and round(abs(value), decimals) != 0 else "") + text


def format_decimal(value: float, lang: Lang, max_decimals: int = 1) -> str:
    """Up to ``max_decimals`` places, dropping a trailing ``,0``: ``99.2`` -> ``99,2``, ``100.0`` -> ``100``."""
    text = format_number(value, lang, max_decimals)
    sep = _DECIMAL[lang]
    if sep in text:
        text = text.rstrip("0").rstrip(sep)
    return text


def format_percent(value: float, lang: Lang, max_decimals: int = 1) -> str:
    number = format_decimal(value, lang, max_decimals)
    return f"{number}{NBSP}%" if lang == "fr" else f"{number}%"


def parse_instant(value: str) -> datetime:
    """An ISO 8601 instant from the predicate (``...Z`` or with an offset); naive text is refused, never guessed."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment.astimezone(UTC)


def format_date(value: date | datetime | str, lang: Lang) -> str:
    """``31 octobre 2026`` / ``31 October 2026`` (``1er octobre 2026`` in French for the first day)."""
    if isinstance(value, str):
        value = parse_instant(value)
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    month = _MONTHS[lang][value.month - 1]
    day = "1er" if lang == "fr" and value.day == 1 else str(value.day)
    return f"{day} {month} {value.year}"


def format_datetime(value: datetime | str, lang: Lang) -> str:
    """``31 octobre 2026 à 03:12 UTC`` / ``31 October 2026, 03:12 UTC``: stored instants are UTC, and say so."""
    moment = parse_instant(value) if isinstance(value, str) else value.astimezone(UTC)
    joiner = " à " if lang == "fr" else ", "
    return f"{format_date(moment, lang)}{joiner}{moment:%H:%M} UTC"


def format_month(month: str, lang: Lang) -> str:
    """``2026-10`` -> ``octobre 2026`` / ``October 2026``."""
    year, _, number = month.partition("-")
    name = _MONTHS[lang][int(number) - 1]
    return f"{name} {int(year)}"


def format_duration(seconds: float, lang: Lang) -> str:
    """Whole units a manager reads at a glance: ``45 s``, ``12 min``, ``1 h 30 min``, ``27 h``, ``3 j 4 h``."""
    if not math.isfinite(seconds):
        raise ValueError(f"{seconds!r} is not a finite duration")
    if seconds < 0:
        return "-" + format_duration(-seconds, lang)
    total = round(seconds)
    if total < 60:
        return f"{total}{NBSP}s"
    minutes = round(total / 60)
    if minutes < 60:
        return f"{minutes}{NBSP}min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}{NBSP}h" + (f" {rest:02d}{NBSP}min" if rest else "")
    days, hours = divmod(round(total / 3600), 24)
    return f"{days}{NBSP}{_DAY[lang]}" + (f" {hours}{NBSP}h" if hours else "")


def format_bytes(count: float, lang: Lang) -> str:
    """``3221225472`` -> ``3 Gio`` / ``3 GiB``; one decimal under 10 of a unit, none above."""
    if not math.isfinite(count) or count < 0:
        raise ValueError(f"{count!r} is not a size in bytes")
    value = float(count)
    units = _BYTE_UNITS[lang]
    index = 0
    while value >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    if index == 0:
        return f"{format_number(value, lang)}{NBSP}{units[0]}"
    return f"{format_decimal(value, lang, 1 if value < 10 else 0)}{NBSP}{units[index]}"
