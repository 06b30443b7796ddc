"""The span of time a policy is checked over: "now" rules look at its end, history rules at all of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_SPAN = timedelta(days=30)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # naive datetimes would silently compare as local time against the store's UTC ones
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs timezone-aware datetimes")
        if self.start > self.end:
            raise ValueError(
                f"the period starts ({self.start:%Y-%m-%d %H:%M}) after it ends ({self.end:%Y-%m-%d %H:%M})"
            )

    @property
    def at(self) -> datetime:
        """The moment "now" rules (age of the newest snapshot, latest drill) are evaluated at."""
        return self.end

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def contains(self, when: datetime) -> bool:
        return self.start <= when <= self.end

    @classmethod
    def ending(cls, at: datetime | None = None, span: timedelta = DEFAULT_SPAN) -> Period:
        """The ``span`` up to ``at`` (default: now)."""
        end = at if at is not None else datetime.now(UTC)
        return cls(end - span, end)
