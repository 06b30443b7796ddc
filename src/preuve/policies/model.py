"""A continuity-plan policy: the rules a client's backups must meet.

Written in YAML with human units (``24h``, ``7d``, ``2GiB``, ``20%``); parsed here into timedeltas, byte counts and
fractions, so that rules never parse text. Impossible values (an RPO of zero, a coverage of 120 %) are refused.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from preuve.config.units import parse_duration, parse_percent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value
    if not isinstance(value, str):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:30] + "..."  # a whole list need not be quoted
        raise ValueError(f"{shown} is not a duration; write it like 24h or 7d")
    try:
        return parse_duration(value)
    except ValueError:
        text = value.strip()
        if text.startswith("-") and _parses(text[1:]):
            raise ValueError(f"{value!r} must be longer than zero") from None  # -1h: well written, but negative
        raise


def _parses(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


def _fraction(value: Any) -> float:
    if isinstance(value, float) and 0 <= value <= 1 and not isinstance(value, bool):
        return value
    return parse_percent(value)


class DrillRules(_Strict):
    every: timedelta = timedelta(days=7)  # at least one passing drill per target per interval
    grace: timedelta = timedelta(days=2)  # a failure must be followed by a pass within this
    full_restore_every: timedelta = timedelta(days=180)  # a full-restore drill confirms the RTO estimate

    _d = field_validator("every", "grace", "full_restore_every", mode="before")(
        classmethod(lambda cls, v: _duration(v))
    )


class IntegrityRules(_Strict):
    window: timedelta = timedelta(days=30)  # every pack read at least once within this

    _d = field_validator("window", mode="before")(classmethod(lambda cls, v: _duration(v)))


class RetentionRules(_Strict):
    # counts are strict integers: YAML reads `yes`/`no` as true/false, which must not become 1/0
    hourly: int = Field(default=0, ge=0, strict=True)
    daily: int = Field(default=7, ge=0, strict=True)
    weekly: int = Field(default=4, ge=0, strict=True)
    monthly: int = Field(default=12, ge=0, strict=True)
    yearly: int = Field(default=0, ge=0, strict=True)


class CopiesRules(_Strict):
    min: int = Field(default=2, ge=1, strict=True)  # targets holding the same source
    media: int = Field(default=2, ge=1, strict=True)  # distinct media kinds among them
    offsite: int = Field(default=1, ge=0, strict=True)
    immutable: int = Field(default=0, ge=0, strict=True)


class ImmutabilityRules(_Strict):
    min_retention: timedelta = timedelta(days=30)  # Object Lock default retention at least this

    _d = field_validator("min_retention", mode="before")(classmethod(lambda cls, v: _duration(v)))


class AnomalyRules(_Strict):
    max_size_drop: float = 0.3  # newest snapshot smaller than the previous by more than this share
    max_files_drop: float = 0.3
    max_changed: float = 0.5  # share of files changed between consecutive snapshots

    _f = field_validator("max_size_drop", "max_files_drop", "max_changed", mode="before")(
        classmethod(lambda cls, v: _fraction(v))
    )


class Policy(_Strict):
    name: str = "standard"
    rpo: timedelta = timedelta(hours=24)  # newest snapshot younger than this
    rto: timedelta = timedelta(hours=8)  # a full restore must fit in this
    drill: DrillRules = Field(default_factory=DrillRules)
    integrity: IntegrityRules = Field(default_factory=IntegrityRules)
    retention: RetentionRules = Field(default_factory=RetentionRules)
    copies: CopiesRules = Field(default_factory=CopiesRules)
    immutability: ImmutabilityRules = Field(default_factory=ImmutabilityRules)
    anomalies: AnomalyRules = Field(default_factory=AnomalyRules)

    _d = field_validator("rpo", "rto", mode="before")(classmethod(lambda cls, v: _duration(v)))
